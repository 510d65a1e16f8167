"""Proxies in front of an Iceberg REST catalog that play the parts of cloud catalogs. Requests
go on to the catalog with its OAuth2 token.

    catalog_proxy.py verify-sigv4 REST_HOST:PORT PREFIX SERVICE REGION
        As AWS Glue's Iceberg endpoint checks requests: every request must carry an AWS
        Signature Version 4 that botocore, recomputing it from the request, agrees with;
        anything else gets 403 and an Iceberg ErrorModel.
    catalog_proxy.py vend-credentials REST_HOST:PORT PREFIX
        As a catalog that vends storage credentials: a load-table response to a request with
        `X-Iceberg-Access-Delegation: vended-credentials` carries the S3 key pair
        (VENDED_ACCESS_KEY_ID / VENDED_SECRET_ACCESS_KEY) in its `config`.

PREFIX is a path prefix (percent-escapes allowed, like a Glue warehouse's
`123456789012%3As3tablescatalog%2Fbucket`) that clients put before the catalog's own paths; the
proxy signs over it and strips it before forwarding. The expected key pair is
SIGV4_ACCESS_KEY_ID / SIGV4_SECRET_ACCESS_KEY; the catalog's OAuth2 client credentials are
AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY. Prints `listening on 127.0.0.1:PORT` (port 0 bound),
then one line per request: `verified METHOD PATH` or `refused METHOD PATH: why`.
"""

import hashlib
import hmac
import json
import os
import re
import sys
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, ?SignedHeaders=(?P<headers>[a-z0-9;-]+), ?"
    r"Signature=(?P<signature>[0-9a-f]{64})$"
)


def oauth_token(rest):
    body = (
        "grant_type=client_credentials"
        f"&client_id={os.environ['AWS_ACCESS_KEY_ID']}"
        f"&client_secret={os.environ['AWS_SECRET_ACCESS_KEY']}"
    ).encode()
    request = urllib.request.Request(
        f"http://{rest}/v1/oauth/tokens",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    with urllib.request.urlopen(request) as response:
        return json.load(response)["access_token"]


def why_refused(handler, body, service, region):
    """None if the request's signature is right, else the reason."""
    auth = AUTH.match(handler.headers.get("Authorization", ""))
    if not auth:
        return "no SigV4 Authorization header"
    if auth["key"] != os.environ["SIGV4_ACCESS_KEY_ID"]:
        return f"unknown access key {auth['key']}"
    if (auth["service"], auth["region"]) != (service, region):
        return f"scope {auth['region']}/{auth['service']}, expected {region}/{service}"
    stamp = handler.headers.get("X-Amz-Date", "")
    if stamp[:8] != auth["date"]:
        return "X-Amz-Date does not match the credential scope"
    if handler.headers.get("X-Amz-Content-SHA256") != hashlib.sha256(body).hexdigest():
        return "X-Amz-Content-SHA256 is not the body's hash"
    signed = auth["headers"].split(";")
    if "host" not in signed or "x-amz-date" not in signed:
        return "host and x-amz-date must be signed"
    headers = {}
    for name in signed:
        value = handler.headers.get(name)
        if value is None:
            return f"signed header {name} is missing"
        headers[name] = value
    request = AWSRequest(
        method=handler.command,
        url=f"http://{headers['host']}{handler.path}",
        data=body,
        headers=headers,
    )
    request.context["timestamp"] = stamp
    signer = SigV4Auth(
        Credentials(os.environ["SIGV4_ACCESS_KEY_ID"], os.environ["SIGV4_SECRET_ACCESS_KEY"]),
        service,
        region,
    )
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, auth["signature"]):
        return "signature mismatch"
    return None


LOAD_TABLE = re.compile(r"/v1/[^/]+/namespaces/[^/]+/tables/[^/?]+(\?.*)?$")


def vend(handler, status, body):
    """The load-table response `body` with vended credentials when the client asked for them."""
    asked = handler.headers.get("X-Iceberg-Access-Delegation", "") == "vended-credentials"
    if handler.command != "GET" or status != 200 or not asked or not LOAD_TABLE.search(handler.path):
        return body
    table = json.loads(body)
    table.setdefault("config", {}).update({
        "s3.access-key-id": os.environ["VENDED_ACCESS_KEY_ID"],
        "s3.secret-access-key": os.environ["VENDED_SECRET_ACCESS_KEY"],
    })
    print(f"vended credentials for {handler.path}", flush=True)
    return json.dumps(table).encode()


def handler_class(mode, rest, prefix, service, region, token):
    class Proxy(BaseHTTPRequestHandler):
        def handle_any(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            reason = why_refused(self, body, service, region) if mode == "verify-sigv4" else None
            if reason is None and not self.path.startswith(prefix + "/"):
                reason = f"path outside {prefix}"
            if reason is not None:
                print(f"refused {self.command} {self.path}: {reason}", flush=True)
                return self.reply(403, json.dumps({"error": {
                    "message": f"SigV4 verification failed: {reason}",
                    "type": "ForbiddenException",
                    "code": 403,
                }}).encode(), {"Content-Type": "application/json"})
            if mode == "verify-sigv4":
                print(f"verified {self.command} {self.path}", flush=True)
            forward = urllib.request.Request(
                f"http://{rest}{self.path[len(prefix):]}",
                data=body if body else None,
                method=self.command,
                headers={
                    "Authorization": f"Bearer {token}",
                    "Content-Type": self.headers.get("Content-Type", "application/json"),
                },
            )
            try:
                with urllib.request.urlopen(forward) as response:
                    reply = vend(self, response.status, response.read())
                    self.reply(response.status, reply, response.headers)
            except urllib.error.HTTPError as error:
                self.reply(error.code, error.read(), error.headers)

        def reply(self, status, body, headers):
            self.send_response(status)
            content_type = headers.get("Content-Type")
            if content_type:
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_DELETE = do_HEAD = do_PUT = handle_any

        def log_message(self, *args):
            pass

    return Proxy


def main():
    mode, rest, prefix = sys.argv[1:4]
    service, region = sys.argv[4:6] if mode == "verify-sigv4" else (None, None)
    token = oauth_token(rest)
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), handler_class(mode, rest, prefix.rstrip("/"), service, region, token)
    )
    print(f"listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
