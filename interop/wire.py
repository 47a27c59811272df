"""Wire-level helpers for the interop suite: protobuf's few encodings the
reflection protocol needs, gRPC's framing, and clients for gRPC-Web (binary
and text, over HTTP/1.1), raw gRPC over cleartext HTTP/2 (curl) and Connect
(JSON over HTTP/1.1). Nothing here is generated from the repo's .proto
files: message types come from the server's reflection service, so the
suite checks what a client that knows only the server's address sees.
"""

import base64
import http.client
import json
import re
import struct
import subprocess
import urllib.parse

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory


# --- protobuf, by hand (only what reflection's messages need) ---

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def string_field(num, value):
    data = value.encode() if isinstance(value, str) else value
    return varint(num << 3 | 2) + varint(len(data)) + data


def fields(data):
    """Yields (field number, value) of a message: ints for varints, bytes
    for length-delimited fields; fixed-width fields are skipped."""
    i = 0
    while i < len(data):
        key, i = _read_varint(data, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _read_varint(data, i)
        elif wire == 2:
            n, i = _read_varint(data, i)
            value, i = data[i:i + n], i + n
        elif wire == 1:
            value, i = None, i + 8
        elif wire == 5:
            value, i = None, i + 4
        else:
            raise ValueError(f"wire type {wire} in a reflection message")
        yield num, value


def _read_varint(data, i):
    n = shift = 0
    while True:
        b = data[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


# --- gRPC framing ---

def frame(payload, flags=0):
    return struct.pack(">BI", flags, len(payload)) + payload


def unframe(data):
    """Splits a body into (flags, payload) envelopes."""
    out, i = [], 0
    while i < len(data):
        if len(data) - i < 5:
            raise ValueError(f"truncated envelope prefix {data[i:]!r}")
        flags, n = struct.unpack(">BI", data[i:i + 5])
        if len(data) - i - 5 < n:
            raise ValueError(f"envelope of {n} bytes, {len(data) - i - 5} left")
        out.append((flags, data[i + 5:i + 5 + n]))
        i += 5 + n
    return out


def b64decode_parts(text):
    """Decodes gRPC-Web text: base64 in one or more padded parts."""
    out, i = bytearray(), 0
    while i < len(text):
        end = text.find(b"=", i)
        end = len(text) if end < 0 else min(i + ((end - i) // 4 + 1) * 4, len(text))
        out += base64.b64decode(text[i:end], validate=True)
        i = end
    return bytes(out)


# --- the schema, by reflection ---

class Schema:
    """Message classes of every service the server lists, from grpcio calls
    to grpc.reflection.v1 (hand-encoded: Debian packages no reflection
    client)."""

    def __init__(self, channel):
        self.channel = channel
        self.files = {}
        self.services = [name for name in self._list_services()]
        for svc in self.services:
            for fdp in self._file_containing(svc):
                self.files.setdefault(fdp.name, fdp)
        self.pool = descriptor_pool.DescriptorPool()
        added = set()

        def add(name):
            if name in added:
                return
            fdp = self.files[name]
            for dep in fdp.dependency:
                add(dep)
            self.pool.Add(fdp)
            added.add(name)

        for name in self.files:
            add(name)
        self._factory = message_factory.MessageFactory(self.pool)

    def _reflect(self, request):
        call = self.channel.stream_stream("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo")
        (response,) = list(call(iter([request]), timeout=10))
        for num, value in fields(response):
            if num == 7:  # error_response
                err = dict(fields(value))
                raise RuntimeError(f"reflection error {err.get(1)}: {err.get(2, b'').decode()}")
        return response

    def _list_services(self):
        response = self._reflect(string_field(7, "*"))
        for num, value in fields(response):
            if num == 6:  # list_services_response
                for n, svc in fields(value):
                    if n == 1:
                        yield dict(fields(svc))[1].decode()

    def _file_containing(self, symbol):
        response = self._reflect(string_field(4, symbol))
        for num, value in fields(response):
            if num == 4:  # file_descriptor_response
                for n, fd in fields(value):
                    if n == 1:
                        yield descriptor_pb2.FileDescriptorProto.FromString(fd)

    def message(self, full_name):
        desc = self.pool.FindMessageTypeByName(full_name)
        get = getattr(message_factory, "GetMessageClass", None)
        return get(desc) if get else self._factory.GetPrototype(desc)

    def method(self, path):
        """Returns (request class, response class, method proto) of
        /package.Service/Method."""
        service, name = path.strip("/").split("/")
        sd = self.pool.FindServiceByName(service)
        md = sd.methods_by_name[name]
        proto = next(m for m in self._service_proto(service).method if m.name == name)
        return self.message(md.input_type.full_name), self.message(md.output_type.full_name), proto

    def _service_proto(self, service):
        package, _, name = service.rpartition(".")
        for fdp in self.files.values():
            if fdp.package == package:
                for sp in fdp.service:
                    if sp.name == name:
                        return sp
        raise KeyError(service)

    def has_method(self, path):
        service, name = path.strip("/").split("/")
        try:
            return name in self.pool.FindServiceByName(service).methods_by_name
        except KeyError:
            return False

    def encode(self, path, data):
        req, _, _ = self.method(path)
        return json_format.ParseDict(data, req()).SerializeToString()

    def decode(self, path, payload):
        _, res, _ = self.method(path)
        return json_format.MessageToDict(res.FromString(payload))


# --- gRPC through grpcio (C-core) ---

def grpc_unary(schema, path, data, **kwargs):
    req, res, _ = schema.method(path)
    call = schema.channel.unary_unary(path, request_serializer=req.SerializeToString,
                                      response_deserializer=res.FromString)
    return json_format.MessageToDict(call(json_format.ParseDict(data, req()), **kwargs))


def grpc_stream(schema, path, data, **kwargs):
    """Starts a server stream; returns the call (an iterator of dicts is
    call_messages(call))."""
    req, res, _ = schema.method(path)
    call = schema.channel.unary_stream(path, request_serializer=req.SerializeToString,
                                       response_deserializer=res.FromString)
    return call(json_format.ParseDict(data, req()), **kwargs)


def grpc_code(fn, *args, **kwargs):
    """Runs an RPC and returns its status code and details."""
    try:
        fn(*args, **kwargs)
    except grpc.RpcError as e:
        return e.code(), e.details()
    return grpc.StatusCode.OK, ""


# --- gRPC-Web over HTTP/1.1 ---

class WebAnswer:
    def __init__(self, status, headers, messages, trailers):
        self.status, self.headers, self.messages, self.trailers = status, headers, messages, trailers

    @property
    def code(self):
        return int(self.trailers.get("grpc-status", "-1"))

    @property
    def message(self):
        return urllib.parse.unquote(self.trailers.get("grpc-message", ""))


def _trailers(payload):
    out = {}
    for line in payload.decode().split("\r\n"):
        if line:
            k, _, v = line.partition(":")
            out[k.strip().lower()] = v.strip()
    return out


def grpc_web(host, port, path, payload, text=False, content_type=None):
    """One gRPC-Web call, binary or text mode, read to its end."""
    ct = content_type or ("application/grpc-web-text" if text else "application/grpc-web+proto")
    body = frame(payload)
    if text:
        body = base64.b64encode(body)
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request("POST", path, body, {"Content-Type": ct, "Accept": ct, "X-Grpc-Web": "1"})
        resp = conn.getresponse()
        data = resp.read()
        headers = {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()
    if not headers.get("content-type", "").startswith("application/grpc-web"):
        raise AssertionError(f"HTTP {resp.status} {headers.get('content-type')}: {data[:200]!r}")
    if text:
        data = b64decode_parts(data)
    messages, trailers = [], dict(headers)  # trailers-only: in the headers
    for flags, p in unframe(data):
        if flags & 0x80:
            trailers = _trailers(p)
        else:
            messages.append(p)
    return WebAnswer(resp.status, headers, messages, trailers)


def grpc_web_text_first(host, port, path, payload):
    """Opens a gRPC-Web text server stream and returns its response headers
    and its first message's bytes, read while the stream is still open:
    one padded base64 part, as the server flushes each message."""
    ct = "application/grpc-web-text+proto"
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request("POST", path, base64.b64encode(frame(payload)), {"Content-Type": ct, "X-Grpc-Web": "1"})
        resp = conn.getresponse()
        headers = {k.lower(): v for k, v in resp.getheaders()}
        part = b""
        while True:
            chunk = resp.read1(4096)
            if not chunk:
                raise AssertionError(f"the stream ended before a whole message: {part!r}")
            part += chunk
            if len(part) % 4:
                continue
            try:
                envelopes = unframe(b64decode_parts(part))
            except ValueError:
                continue  # not a whole message yet
            if envelopes:
                return headers, envelopes[0]
    finally:
        conn.close()


# --- raw gRPC over cleartext HTTP/2, with curl ---

def curl_grpc(addr, path, payload, headers=(), flags=0):
    """POSTs one gRPC frame with curl (HTTP/2, prior knowledge) and returns
    (HTTP status, {header: [values]}) with trailers among the headers."""
    out = subprocess.run(
        ["curl", "-sS", "-i", "--http2-prior-knowledge", "--max-time", "30",
         "-H", "Content-Type: application/grpc", "-H", "TE: trailers",
         *[a for h in headers for a in ("-H", h)],
         "--data-binary", "@-", f"http://{addr}{path}"],
        input=frame(payload, flags), capture_output=True)
    if out.returncode != 0:
        raise AssertionError(f"curl exit {out.returncode}: {out.stderr.decode(errors='replace')}")
    text = out.stdout.decode("latin-1")
    status = int(re.match(r"HTTP/2 (\d+)", text).group(1))
    found = {}
    for name, value in re.findall(r"^([A-Za-z0-9-]+):[ \t]*(.*?)\r?$", text, re.M):
        found.setdefault(name.lower(), []).append(value)
    return status, found


# --- Connect, JSON over HTTP/1.1 ---

def connect_call(host, port, path, body, method="POST", headers=None):
    """One Connect unary call; returns (HTTP status, parsed JSON body)."""
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        h = {"Content-Type": "application/json", **(headers or {})}
        if method == "GET":
            q = urllib.parse.urlencode({"connect": "v1", "encoding": "json", "message": json.dumps(body)})
            conn.request("GET", f"{path}?{q}")
        else:
            conn.request("POST", path, body if isinstance(body, bytes) else json.dumps(body).encode(), h)
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    try:
        return resp.status, json.loads(data) if data else {}
    except ValueError:
        return resp.status, {"raw": data.decode("latin-1")}
