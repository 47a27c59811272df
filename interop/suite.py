#!/usr/bin/python3
"""Interop suite: a running miniZON, called by clients this project did not
write. Python grpcio (C-core, Debian's python3-grpcio) with message types
from the server's reflection, grpcurl (pinned in tools/go.mod), curl for
raw gRPC over cleartext HTTP/2, and Python's http.client for gRPC-Web
(binary and text) and Connect (POST and GET).

    /usr/bin/python3 interop/suite.py HOST:PORT

GRPCURL names the grpcurl command (default: go tool -modfile=tools/go.mod
grpcurl, run from the repository root). For a server started with
MINIZON_AUTH_TOKENS and a low LOMS_MAX_WATCHERS, INTEROP_AUTH_TOKEN and
INTEROP_MAX_WATCHERS say so, and the checks of unauthenticated and
resource_exhausted run; the journey then needs the token too, so such a
server is checked with INTEROP_ONLY=limits. Prints one line per check and a
tally; exits 1 if any check failed.
"""

import json
import os
import random
import re
import shlex
import subprocess
import sys
import time
import traceback
import urllib.request

import grpc

import wire

LOMS = "/minizon.loms.v1.LomsService/"
CHECKOUT = "/minizon.checkout.v1.CheckoutService/"
PRODUCT = "/route256.product.ProductService/"
HEALTH = "/grpc.health.v1.Health/"
SERVICES = ["minizon.loms.v1.LomsService", "minizon.checkout.v1.CheckoutService",
            "route256.product.ProductService", "grpc.health.v1.Health"]
# In every warehouse of minizon dev's seed (ARCHITECTURE.md).
SKU, SKU2 = 773297411, 773587830
TOKEN = "testtoken"
S = grpc.StatusCode


class Suite:
    def __init__(self, addr):
        self.addr = addr
        self.host, port = addr.rsplit(":", 1)
        self.port = int(port)
        self.passed = self.failed = self.skipped = 0
        self.channel = grpc.insecure_channel(addr)
        self.schema = None
        # Users of their own, so that other clients of the same server
        # (CI's recipes, the load tool) do not share their carts.
        self.user = random.randrange(10**12, 2 * 10**12)
        self.grpcurl = shlex.split(os.environ.get("GRPCURL", "go tool -modfile=tools/go.mod grpcurl"))

    def next_user(self):
        self.user += 1
        return self.user

    def check(self, client, what, fn):
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - every failure is reported, then the suite goes on
            self.failed += 1
            print(f"FAIL {client}: {what}: {type(e).__name__}: {e}")
            if os.environ.get("INTEROP_TRACE"):
                traceback.print_exc()
        else:
            self.passed += 1
            print(f"ok   {client}: {what}")

    def skip(self, client, what, why):
        self.skipped += 1
        print(f"SKIP {client}: {what}: {why}")

    # --- helpers ---

    def unary(self, path, data, **kw):
        kw.setdefault("timeout", 30)
        return wire.grpc_unary(self.schema, path, data, **kw)

    def code(self, path, data, **kw):
        kw.setdefault("timeout", 30)
        return wire.grpc_code(wire.grpc_unary, self.schema, path, data, **kw)

    def want_code(self, want, path, data, says=None, **kw):
        got, details = self.code(path, data, **kw)
        assert got == want, f"{path} {data}: {got} {details!r}, want {want}"
        if says:
            assert says in details, f"{path}: details {details!r}, want them to say {says!r}"

    def grpcurl_run(self, *args, data=None, timeout=60):
        cmd = [*self.grpcurl, "-plaintext"]
        if data is not None:
            cmd += ["-d", json.dumps(data)]
        cmd += [*args]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout, p.stderr

    def metrics(self):
        with urllib.request.urlopen(f"http://{self.addr}/metrics", timeout=30) as r:
            text = r.read().decode()
        faults = 0
        for line in text.splitlines():
            if line.startswith("minizon_rpc_server_requests_total{") and re.search(r'code="(internal|unknown)"', line):
                faults += float(line.rsplit(" ", 1)[1])
        return faults

    # --- the checks ---

    def run(self):
        faults_before = self.metrics()
        self.check("grpcio", "reflection (grpc.reflection.v1) lists the services and serves their schemas", self.reflection)
        if self.schema is None:
            print("interop: no schema, nothing else can run")
            return
        if os.environ.get("INTEROP_ONLY") == "limits":
            self.limits()
            self.check("server /metrics", "no RPC answered internal or unknown during the suite",
                       lambda: self._no_new_faults(faults_before))
            return
        self.check("grpcurl", "list and describe by reflection", self.grpcurl_reflection)
        self.check("grpcio", "health Check, List, Watch (SERVICE_UNKNOWN, the stream stays open)", self.health)
        self.check("grpcurl", "health Check, List, Watch of an unknown service", self.grpcurl_health)
        self.check("grpcio", "the purchase journey: Stocks, AddToCart, ListCart, Purchase, ListOrder, OrderPayed (gzip on)",
                   self.journey)
        self.check("grpcurl", "Stocks, AddToCart, ListCart, Purchase, ListOrder, OrderPayed", self.grpcurl_journey)
        self.check("grpcio", "error codes: invalid_argument, not_found, failed_precondition, unauthenticated, no-op ok",
                   self.error_table)
        self.check("grpcurl", "error codes as exit statuses (64 + code)", self.grpcurl_errors)
        self.check("grpcio", "unknown method and service: unimplemented naming them", self.unknown_grpcio)
        self.check("curl (gRPC, h2c)", "unknown method: HTTP 200, application/grpc, grpc-status 12, grpc-message",
                   self.unknown_raw)
        self.check("curl (gRPC, h2c)", "grpc-timeout 0m and 50u: grpc-status 4 (deadline_exceeded), not 13",
                   self.deadline_raw)
        self.check("grpcio", "deadlines: a stream outliving its own ends DEADLINE_EXCEEDED, short unary ones never INTERNAL",
                   self.deadline_grpcio)
        self.check("curl (gRPC, h2c)", "grpc-encoding br: unimplemented, grpc-accept-encoding, no empty grpc-encoding",
                   self.encoding_raw)
        self.check("grpc-web (http.client)", "binary: Stocks, not_found in trailers-only, unknown method", self.grpc_web_binary)
        self.check("grpc-web (http.client)", "text mode: Stocks, +proto, not_found, unknown method", self.grpc_web_text)
        self.check("grpc-web (http.client)", "text mode server stream: health Watch's first message while open",
                   self.grpc_web_text_stream)
        self.check("connect (http.client)", "POST JSON, Connect-Timeout-Ms 0 is deadline_exceeded, unknown is 404",
                   self.connect_post)
        self.check("connect (http.client)", "GET for every NO_SIDE_EFFECTS RPC (?connect=v1&encoding=json&message=)",
                   self.connect_get)
        if self.schema.has_method(LOMS + "WatchOrder"):
            self.check("grpcio", "WatchOrder: the current state first, each change, ends OK after PAYED", self.watch_order)
            self.check("grpcurl", "WatchOrder of a paid order: PAYED, then the stream ends OK", self.grpcurl_watch_order)
            self.check("grpc-web (http.client)", "text mode WatchOrder of a paid order, read to its end",
                       self.grpc_web_watch_order)
        else:
            for client in ("grpcio", "grpcurl", "grpc-web (http.client)"):
                self.skip(client, "WatchOrder server stream",
                          "reflection does not list minizon.loms.v1.LomsService/WatchOrder on this server")
        self.limits()
        self.check("server /metrics", "no RPC answered internal or unknown during the suite",
                   lambda: self._no_new_faults(faults_before))

    def limits(self):
        """The codes only a server with auth on and a low watcher cap gives."""
        token, cap = os.environ.get("INTEROP_AUTH_TOKEN"), os.environ.get("INTEROP_MAX_WATCHERS")
        if token:
            self.check("grpcio", "unauthenticated: CreateOrder and ReceiveStock without or with a wrong bearer token; "
                       "reads need none", lambda: self.auth(token))
        else:
            self.skip("any", "unauthenticated for state-changing RPCs", "INTEROP_AUTH_TOKEN not set: the server runs without MINIZON_AUTH_TOKENS")
        if cap and self.schema.has_method(LOMS + "WatchOrder"):
            self.check("grpcio", f"resource_exhausted: WatchOrder over LOMS_MAX_WATCHERS ({cap})",
                       lambda: self.watcher_cap(int(cap), token))
        else:
            self.skip("any", "resource_exhausted (LOMS_MAX_WATCHERS)", "INTEROP_MAX_WATCHERS not set: the server's cap is too high to reach")

    def _no_new_faults(self, before):
        after = self.metrics()
        assert after == before, f"internal/unknown answers went from {before} to {after}: see the server's log"

    def reflection(self):
        schema = wire.Schema(self.channel)
        for svc in SERVICES:
            assert svc in schema.services, f"reflection lists {schema.services}, missing {svc}"
        req, res, _ = schema.method(LOMS + "Stocks")
        assert req.DESCRIPTOR.full_name == "minizon.loms.v1.StocksRequest", req.DESCRIPTOR.full_name
        self.schema = schema

    def grpcurl_reflection(self):
        rc, out, err = self.grpcurl_run(self.addr, "list")
        assert rc == 0, err
        for svc in SERVICES:
            assert svc in out.split(), f"grpcurl list: {out!r}"
        rc, out, err = self.grpcurl_run(self.addr, "describe", "minizon.loms.v1.LomsService")
        assert rc == 0 and "rpc Stocks" in out and "rpc OrderPayed" in out, out + err
        rc, out, err = self.grpcurl_run(self.addr, "describe", "grpc.health.v1.Health")
        assert rc == 0 and "rpc List" in out and "rpc Watch" in out, out + err

    def health(self):
        for svc in ["", *SERVICES[:3]]:
            got = self.unary(HEALTH + "Check", {"service": svc})
            assert got == {"status": "SERVING"}, f"Check {svc!r}: {got}"
        self.want_code(S.NOT_FOUND, HEALTH + "Check", {"service": "minizon.nope.v1.Nope"})
        statuses = self.unary(HEALTH + "List", {})["statuses"]
        for svc in SERVICES[:3]:
            assert statuses.get(svc) == {"status": "SERVING"}, f"List: {statuses}"
        call = wire.grpc_stream(self.schema, HEALTH + "Watch", {"service": "minizon.later.v1.Later"}, timeout=60)
        first = wire.json_format.MessageToDict(next(call))
        assert first == {"status": "SERVICE_UNKNOWN"}, first
        # Still open after another round trip; then this client leaves.
        self.unary(HEALTH + "Check", {})
        assert call.is_active(), f"the Watch of an unknown service ended: {call.code()} {call.details()}"
        call.cancel()
        for svc in SERVICES[:3]:
            call = wire.grpc_stream(self.schema, HEALTH + "Watch", {"service": svc}, timeout=60)
            first = wire.json_format.MessageToDict(next(call))
            call.cancel()
            assert first == {"status": "SERVING"}, f"Watch {svc}: {first}"

    def grpcurl_health(self):
        rc, out, err = self.grpcurl_run(self.addr, "grpc.health.v1.Health/Check")
        assert rc == 0 and json.loads(out) == {"status": "SERVING"}, out + err
        rc, out, err = self.grpcurl_run(self.addr, "grpc.health.v1.Health/List")
        assert rc == 0 and json.loads(out)["statuses"]["minizon.loms.v1.LomsService"] == {"status": "SERVING"}, out + err
        # The stream stays open until grpcurl's own deadline ends it.
        rc, out, err = self.grpcurl_run("-max-time", "2", self.addr, "grpc.health.v1.Health/Watch",
                                        data={"service": "minizon.later.v1.Later"})
        assert rc == 64 + 4 and json.loads(out) == {"status": "SERVICE_UNKNOWN"}, f"exit {rc}: {out} {err}"

    def journey(self):
        gz = {"compression": grpc.Compression.Gzip}
        user = self.next_user()
        stocks = self.unary(LOMS + "Stocks", {"sku": SKU}, **gz)["stocks"]
        assert sum(int(s["count"]) for s in stocks) >= 2, stocks
        self.unary(CHECKOUT + "AddToCart", {"user": user, "sku": SKU, "count": 2}, **gz)
        self.unary(CHECKOUT + "AddToCart", {"user": user, "sku": SKU2, "count": 1}, **gz)
        cart = self.unary(CHECKOUT + "ListCart", {"user": user}, **gz)
        assert sorted((i["sku"], i["count"]) for i in cart["items"]) == [(SKU, 2), (SKU2, 1)], cart
        assert all(i.get("name") and i.get("price") for i in cart["items"]), cart
        assert int(cart["totalPrice"]) == sum(i["count"] * i["price"] for i in cart["items"]), cart
        order = self.unary(CHECKOUT + "Purchase", {"user": user}, **gz)
        assert order["status"] == "ORDER_STATUS_AWAITING_PAYMENT", order
        again = self.unary(CHECKOUT + "Purchase", {"user": user})
        assert again["orderId"] == order["orderId"], (order, again)
        listed = self.unary(LOMS + "ListOrder", {"orderId": order["orderId"]}, **gz)
        assert listed["status"] == "ORDER_STATUS_AWAITING_PAYMENT" and int(listed["user"]) == user, listed
        self.unary(LOMS + "OrderPayed", {"orderId": order["orderId"]}, **gz)
        listed = self.unary(LOMS + "ListOrder", {"orderId": order["orderId"]})
        assert listed["status"] == "ORDER_STATUS_PAYED", listed

    def grpcurl_journey(self):
        user = self.next_user()

        def call(method, data):
            rc, out, err = self.grpcurl_run(self.addr, method.strip("/"), data=data)
            assert rc == 0, f"{method}: exit {rc}: {err}"
            return json.loads(out)

        assert call(LOMS + "Stocks", {"sku": SKU2})["stocks"]
        call(CHECKOUT + "AddToCart", {"user": user, "sku": SKU2, "count": 1})
        assert call(CHECKOUT + "ListCart", {"user": user})["items"][0]["sku"] == SKU2
        order = call(CHECKOUT + "Purchase", {"user": user})
        assert order["status"] == "ORDER_STATUS_AWAITING_PAYMENT", order
        call(LOMS + "OrderPayed", {"orderId": order["orderId"]})
        assert call(LOMS + "ListOrder", {"orderId": order["orderId"]})["status"] == "ORDER_STATUS_PAYED"

    def error_table(self):
        user = self.next_user()
        # invalid_argument: ids and counts out of range; messages name the field.
        self.want_code(S.INVALID_ARGUMENT, LOMS + "Stocks", {"sku": 0}, says="sku")
        self.want_code(S.INVALID_ARGUMENT, LOMS + "ListOrder", {"orderId": 0}, says="order_id")
        self.want_code(S.INVALID_ARGUMENT, CHECKOUT + "AddToCart", {"user": user, "sku": SKU, "count": 0}, says="count")
        self.want_code(S.INVALID_ARGUMENT, LOMS + "CreateOrder", {"user": user, "items": []}, says="items")
        # not_found: an unknown order, an unknown sku in GetProduct.
        self.want_code(S.NOT_FOUND, LOMS + "ListOrder", {"orderId": "9223372036854775807"})
        self.want_code(S.NOT_FOUND, LOMS + "OrderPayed", {"orderId": "9223372036854775807"})
        self.want_code(S.NOT_FOUND, PRODUCT + "GetProduct", {"token": TOKEN, "sku": 4294967295})
        # unauthenticated: ProductService's token.
        self.want_code(S.UNAUTHENTICATED, PRODUCT + "GetProduct", {"token": "wrong", "sku": SKU})
        self.want_code(S.UNAUTHENTICATED, PRODUCT + "ListSkus", {"count": 1})
        # failed_precondition: an empty cart, more than the stock, paying a cancelled order.
        self.want_code(S.FAILED_PRECONDITION, CHECKOUT + "Purchase", {"user": user})
        self.want_code(S.FAILED_PRECONDITION, CHECKOUT + "AddToCart", {"user": user, "sku": SKU, "count": 65535})
        order = self.unary(LOMS + "CreateOrder", {"user": user, "items": [{"sku": SKU2, "count": 1}]})
        self.unary(LOMS + "CancelOrder", {"orderId": order["orderId"]})
        self.unary(LOMS + "CancelOrder", {"orderId": order["orderId"]})  # ok: a no-op
        self.want_code(S.FAILED_PRECONDITION, LOMS + "OrderPayed", {"orderId": order["orderId"]})
        # ok no-ops: paying a paid order, deleting what the cart lacks.
        paid = self.unary(LOMS + "CreateOrder", {"user": user, "items": [{"sku": SKU2, "count": 1}]})
        self.unary(LOMS + "OrderPayed", {"orderId": paid["orderId"]})
        self.unary(LOMS + "OrderPayed", {"orderId": paid["orderId"]})
        self.want_code(S.FAILED_PRECONDITION, LOMS + "CancelOrder", {"orderId": paid["orderId"]})
        self.unary(CHECKOUT + "DeleteFromCart", {"user": user, "sku": SKU, "count": 1})

    def grpcurl_errors(self):
        for method, data, code in [
            (LOMS + "ListOrder", {"orderId": "9223372036854775807"}, 5),
            (LOMS + "Stocks", {"sku": 0}, 3),
            (PRODUCT + "GetProduct", {"token": "wrong", "sku": SKU}, 16),
            (CHECKOUT + "Purchase", {"user": self.next_user()}, 9),
        ]:
            rc, out, err = self.grpcurl_run("-format-error", self.addr, method.strip("/"), data=data)
            assert rc == 64 + code, f"{method}: exit {rc}, want {64 + code}: {out} {err}"
            assert json.loads(err)["code"] == code, err

    def unknown_grpcio(self):
        for path, says in [(LOMS + "Nope", "unknown method Nope for service minizon.loms.v1.LomsService"),
                           ("/minizon.nope.v1.Nope/Get", "unknown service minizon.nope.v1.Nope")]:
            call = self.channel.unary_unary(path)
            got, details = wire.grpc_code(call, b"", timeout=30)
            assert got == S.UNIMPLEMENTED and details == says, f"{path}: {got} {details!r}, want UNIMPLEMENTED {says!r}"

    def unknown_raw(self):
        status, h = wire.curl_grpc(self.addr, LOMS + "Nope", b"")
        assert status == 200 and h.get("content-type") == ["application/grpc"], (status, h)
        assert h.get("grpc-status") == ["12"], h
        assert h.get("grpc-message") == ["unknown method Nope for service minizon.loms.v1.LomsService"], h

    def deadline_raw(self):
        payload = self.schema.encode(LOMS + "Stocks", {"sku": SKU})
        for timeout in ("0m", "50u"):
            status, h = wire.curl_grpc(self.addr, LOMS + "Stocks", payload, headers=[f"grpc-timeout: {timeout}"])
            # 50u may be enough on a fast machine: then the call succeeds.
            assert status == 200 and h.get("grpc-status") in (["4"], ["0"]), (timeout, status, h)
            if timeout == "0m":
                assert h.get("grpc-status") == ["4"], h
        payload = self.schema.encode(CHECKOUT + "ListCart", {"user": self.next_user()})
        status, h = wire.curl_grpc(self.addr, CHECKOUT + "ListCart", payload, headers=["grpc-timeout: 0m"])
        assert h.get("grpc-status") == ["4"], h

    def deadline_grpcio(self):
        # A stream that outlives its deadline ends DEADLINE_EXCEEDED.
        call = wire.grpc_stream(self.schema, HEALTH + "Watch", {"service": ""}, timeout=0.5)
        got, details = wire.grpc_code(list, call)
        assert got == S.DEADLINE_EXCEEDED, f"Watch with a 0.5s deadline: {got} {details!r}"
        # A unary call whose deadline runs out somewhere on its way: the
        # caller sees DEADLINE_EXCEEDED, or OK if the call was faster; what
        # the server made of it is checked by /metrics at the end.
        for timeout in (0.0005, 0.002, 0.01):
            got, details = self.code(CHECKOUT + "ListCart", {"user": self.next_user()}, timeout=timeout)
            assert got in (S.DEADLINE_EXCEEDED, S.OK), f"timeout {timeout}: {got} {details!r}"

    def encoding_raw(self):
        payload = self.schema.encode(LOMS + "Stocks", {"sku": SKU})
        status, h = wire.curl_grpc(self.addr, LOMS + "Stocks", payload, headers=["grpc-encoding: br"], flags=1)
        assert status == 200 and h.get("grpc-status") == ["12"], (status, h)
        assert "gzip" in ",".join(h.get("grpc-accept-encoding", [])), h
        assert "grpc-encoding" not in h, f"grpc-encoding sent: {h.get('grpc-encoding')}"

    def grpc_web_binary(self):
        payload = self.schema.encode(LOMS + "Stocks", {"sku": SKU})
        a = wire.grpc_web(self.host, self.port, LOMS + "Stocks", payload)
        assert a.status == 200 and a.code == 0 and len(a.messages) == 1, (a.status, a.trailers)
        assert self.schema.decode(LOMS + "Stocks", a.messages[0])["stocks"], a.messages
        a = wire.grpc_web(self.host, self.port, LOMS + "ListOrder",
                          self.schema.encode(LOMS + "ListOrder", {"orderId": "9223372036854775807"}))
        assert a.status == 200 and a.code == 5 and "not found" in a.message, (a.status, a.trailers)
        a = wire.grpc_web(self.host, self.port, LOMS + "Nope", b"")
        assert a.status == 200 and a.code == 12 and a.headers["content-type"] == "application/grpc-web+proto", a.headers

    def grpc_web_text(self):
        payload = self.schema.encode(LOMS + "Stocks", {"sku": SKU})
        for ct in ("application/grpc-web-text", "application/grpc-web-text+proto"):
            a = wire.grpc_web(self.host, self.port, LOMS + "Stocks", payload, text=True, content_type=ct)
            assert a.status == 200 and a.headers["content-type"] == ct and a.code == 0, (ct, a.status, a.headers, a.trailers)
            assert self.schema.decode(LOMS + "Stocks", a.messages[0])["stocks"], a.messages
        a = wire.grpc_web(self.host, self.port, LOMS + "ListOrder",
                          self.schema.encode(LOMS + "ListOrder", {"orderId": "9223372036854775807"}), text=True)
        assert a.code == 5, a.trailers
        a = wire.grpc_web(self.host, self.port, "/minizon.nope.v1.Nope/Get", b"", text=True)
        assert a.status == 200 and a.code == 12 and a.message == "unknown service minizon.nope.v1.Nope", a.trailers

    def grpc_web_text_stream(self):
        headers, (flags, payload) = wire.grpc_web_text_first(
            self.host, self.port, HEALTH + "Watch", self.schema.encode(HEALTH + "Watch", {"service": ""}))
        assert headers["content-type"] == "application/grpc-web-text+proto", headers
        assert flags == 0 and self.schema.decode(HEALTH + "Watch", payload) == {"status": "SERVING"}, payload

    def connect_post(self):
        status, body = wire.connect_call(self.host, self.port, LOMS + "Stocks", {"sku": SKU})
        assert status == 200 and body["stocks"], (status, body)
        status, body = wire.connect_call(self.host, self.port, LOMS + "Stocks", {"sku": SKU}, headers={"Connect-Timeout-Ms": "0"})
        assert status == 504 and body.get("code") == "deadline_exceeded", (status, body)
        status, body = wire.connect_call(self.host, self.port, HEALTH + "Check", {})
        assert status == 200 and body == {"status": "SERVING"}, (status, body)
        status, body = wire.connect_call(self.host, self.port, LOMS + "Stocks", b'{"sku": ')
        assert status == 400 and body.get("code") == "invalid_argument", (status, body)
        status, _ = wire.connect_call(self.host, self.port, LOMS + "Nope", {})
        assert status == 404, status

    def connect_get(self):
        user = self.next_user()
        samples = {
            LOMS + "Stocks": {"sku": SKU},
            LOMS + "ListOrder": {"orderId": "9223372036854775807"},
            LOMS + "ListOrders": {"user": user, "pageSize": 1},
            CHECKOUT + "ListCart": {"user": user},
            PRODUCT + "GetProduct": {"token": TOKEN, "sku": SKU},
            PRODUCT + "ListSkus": {"token": TOKEN, "count": 2},
        }
        seen = []
        for svc in SERVICES[:3]:
            for m in self.schema._service_proto(svc).method:
                path = f"/{svc}/{m.name}"
                if m.options.idempotency_level != m.options.NO_SIDE_EFFECTS or m.server_streaming or m.client_streaming:
                    continue
                seen.append(path)
                status, body = wire.connect_call(self.host, self.port, path, samples.get(path, {}), method="GET")
                if path == LOMS + "ListOrder":
                    assert status == 404 and body.get("code") == "not_found", (path, status, body)
                elif path in samples:
                    assert status == 200, (path, status, body)
                else:  # a read-only RPC added since: it answers GET in Connect's terms
                    assert status == 200 or "code" in body and body["code"] != "unimplemented", (path, status, body)
        assert set(samples) <= set(seen), f"NO_SIDE_EFFECTS RPCs by reflection: {seen}"

    def _paid_order(self):
        user = self.next_user()
        order = self.unary(LOMS + "CreateOrder", {"user": user, "items": [{"sku": SKU2, "count": 1}]})
        self.unary(LOMS + "OrderPayed", {"orderId": order["orderId"]})
        return order["orderId"]

    def watch_order(self):
        user = self.next_user()
        order = self.unary(LOMS + "CreateOrder", {"user": user, "items": [{"sku": SKU2, "count": 1}]})
        call = wire.grpc_stream(self.schema, LOMS + "WatchOrder", {"orderId": order["orderId"]}, timeout=60)
        first = wire.json_format.MessageToDict(next(call))
        assert first["status"] == "ORDER_STATUS_AWAITING_PAYMENT", first
        self.unary(LOMS + "OrderPayed", {"orderId": order["orderId"]})
        rest = [wire.json_format.MessageToDict(m) for m in call]  # ends OK, or raises
        assert rest and rest[-1]["status"] == "ORDER_STATUS_PAYED", rest
        assert call.code() == S.OK, call.code()

    def auth(self, token):
        user = self.next_user()
        order = {"user": user, "items": [{"sku": SKU2, "count": 1}]}
        self.want_code(S.UNAUTHENTICATED, LOMS + "CreateOrder", order)
        self.want_code(S.UNAUTHENTICATED, LOMS + "CreateOrder", order, metadata=(("authorization", "Bearer wrong-" + token),))
        self.want_code(S.UNAUTHENTICATED, LOMS + "ReceiveStock",
                       {"warehouseId": 1, "items": [{"sku": SKU2, "count": 1}]})
        bearer = (("authorization", "Bearer " + token),)
        made = self.unary(LOMS + "CreateOrder", order, metadata=bearer)
        assert made["status"] == "ORDER_STATUS_AWAITING_PAYMENT", made
        self.unary(LOMS + "ListOrder", {"orderId": made["orderId"]})  # a read needs no token
        self.unary(LOMS + "CancelOrder", {"orderId": made["orderId"]}, metadata=bearer)

    def watcher_cap(self, cap, token):
        metadata = (("authorization", "Bearer " + token),) if token else None
        order = self.unary(LOMS + "CreateOrder", {"user": self.next_user(), "items": [{"sku": SKU2, "count": 1}]},
                           metadata=metadata)
        calls = []
        try:
            for _ in range(cap):
                call = wire.grpc_stream(self.schema, LOMS + "WatchOrder", {"orderId": order["orderId"]}, timeout=60)
                next(call)  # open, its first message read
                calls.append(call)
            over = wire.grpc_stream(self.schema, LOMS + "WatchOrder", {"orderId": order["orderId"]}, timeout=60)
            try:
                next(over)
                raise AssertionError(f"stream {cap + 1} was opened over a cap of {cap}")
            except grpc.RpcError as e:
                assert e.code() == S.RESOURCE_EXHAUSTED, (e.code(), e.details())
                assert "too many" in e.details(), e.details()
        finally:
            for call in calls:
                call.cancel()
        self.unary(LOMS + "CancelOrder", {"orderId": order["orderId"]}, metadata=metadata)

    def grpcurl_watch_order(self):
        rc, out, err = self.grpcurl_run(self.addr, "minizon.loms.v1.LomsService/WatchOrder",
                                        data={"orderId": self._paid_order()})
        assert rc == 0 and "ORDER_STATUS_PAYED" in out, f"exit {rc}: {out} {err}"

    def grpc_web_watch_order(self):
        payload = self.schema.encode(LOMS + "WatchOrder", {"orderId": self._paid_order()})
        a = wire.grpc_web(self.host, self.port, LOMS + "WatchOrder", payload, text=True)
        assert a.code == 0 and a.messages, a.trailers
        assert self.schema.decode(LOMS + "WatchOrder", a.messages[-1])["status"] == "ORDER_STATUS_PAYED", a.messages


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    addr = sys.argv[1].removeprefix("http://").rstrip("/")
    start = time.monotonic()
    suite = Suite(addr)
    print(f"interop: against {addr} (grpcio {grpc.__version__}, grpcurl: {' '.join(suite.grpcurl)})")
    suite.run()
    print(f"interop: took {time.monotonic() - start:.1f}s")
    print(f"interop: {suite.passed} passed, {suite.failed} failed, {suite.skipped} skipped")
    return 1 if suite.failed else 0


if __name__ == "__main__":
    sys.exit(main())
