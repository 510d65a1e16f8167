"""Floe's Flight SQL front door as the ADBC Flight SQL driver (a client nobody here wrote) sees
it: runs each statement given on the command line and prints one line per statement, `ok N`
with its row count, or the ADBC status code of its error followed by the message.

usage: adbc_statements.py HOST:PORT SQL [SQL ...]
"""

import sys

import adbc_driver_flightsql.dbapi as flightsql
from adbc_driver_manager import Error


def main() -> None:
    address, statements = sys.argv[1], sys.argv[2:]
    with flightsql.connect(f"grpc://{address}", autocommit=True) as conn:
        for sql in statements:
            cursor = conn.cursor()
            try:
                cursor.execute(sql)
                print(f"ok {len(cursor.fetchall())}")
            except Error as err:
                message = str(err).replace("\n", " ")
                print(f"{err.status_code.name} {message}")
            finally:
                cursor.close()


if __name__ == "__main__":
    main()
