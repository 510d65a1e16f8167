"""Sessions per connection as the ADBC Flight SQL driver keeps them (its cookie middleware, as
BI tools turn it on): prints one JSON object with what each step gave, `ok N` (rows) or the ADBC
status code of its error.

usage: adbc_sessions.py HOST:PORT NAMESPACE TABLE
"""

import json
import sys

import adbc_driver_flightsql.dbapi as flightsql
from adbc_driver_flightsql import ConnectionOptions, DatabaseOptions
from adbc_driver_manager import Error


def connect(address):
    return flightsql.connect(
        f"grpc://{address}",
        db_kwargs={DatabaseOptions.WITH_COOKIE_MIDDLEWARE.value: "true"},
        autocommit=True,
    )


def run(conn, sql):
    cursor = conn.cursor()
    try:
        cursor.execute(sql)
        return f"ok {len(cursor.fetchall())}"
    except Error as err:
        return err.status_code.name
    finally:
        cursor.close()


def main() -> None:
    address, namespace, table = sys.argv[1:4]
    out = {}
    with connect(address) as first, connect(address) as second:
        out["use"] = run(first, f"USE {namespace}")
        out["after_use"] = run(first, f"SELECT * FROM {table}")
        out["other_connection"] = run(second, f"SELECT * FROM {table}")
        # Flight's session options: the schema set through ADBC's connection option.
        second.adbc_connection.set_options(
            **{ConnectionOptions.OPTION_SESSION_OPTION_PREFIX.value + "schema": namespace}
        )
        out["after_set_option"] = run(second, f"SELECT * FROM {table}")
        options = second.adbc_connection.get_option(ConnectionOptions.OPTION_SESSION_OPTIONS.value)
        out["options"] = json.loads(options)
    # A fresh connection starts in the default namespace again.
    with connect(address) as third:
        out["new_connection"] = run(third, f"SELECT * FROM {table}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
