#!/usr/bin/env python3
"""Record the seed corpora of fuzz_ws and fuzz_http from real traffic.

    capture_seeds.py BUILD_DIR OUT_DIR

Starts parley-refserver from BUILD_DIR with a few fault settings, runs the
parley client (`parley bench`) against it through a recording TCP proxy,
and writes what the server sent:
  OUT_DIR/fuzz_ws/<case>: the byte stream after the 101 answer and hello,
      as fuzz_ws reads it (byte 0: its round settings; request ids as
      "$0".."$2" and sessions as s0..s2 in text frames, lengths adjusted;
      binary (compressed) frames as they were);
  OUT_DIR/fuzz_http/<case>: each HTTP response as fuzz_http reads it
      (byte 0: dialect and requests), recorded the same way, one per
      connection, and one gzip variant made from a recorded stream.
Only a maintainer runs it, when the protocol changes; the seeds are
committed.
"""
import gzip
import os
import re
import socket
import struct
import subprocess
import sys
import threading


def start_refserver(build, *flags):
    p = subprocess.Popen([os.path.join(build, "parley-refserver"), "--quiet", *flags],
                         stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    port = int(line.rsplit(":", 1)[1])
    return p, port


class Proxy:
    """Forwards connections to the server and keeps, per connection, the
    bytes the server sent."""

    def __init__(self, port):
        self.upstream = port
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.recorded = []
        self.lock = threading.Lock()
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            c, _ = self.listener.accept()
            s = socket.create_connection(("127.0.0.1", self.upstream))
            buf = bytearray()
            with self.lock:
                self.recorded.append(buf)
            threading.Thread(target=self.pump, args=(c, s, None), daemon=True).start()
            threading.Thread(target=self.pump, args=(s, c, buf), daemon=True).start()

    @staticmethod
    def pump(src, dst, record):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if record is not None:
                    record.extend(data)
                dst.sendall(data)
        except OSError:
            pass
        for sock in (dst,):
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass


def bench(build, port, dialect, conversations, *sets):
    scheme = "ws" if dialect == "native" else "http"
    path = "/v1/stream" if dialect == "native" else ""
    args = [os.path.join(build, "parley"), "bench", "--endpoint",
            f"{scheme}://127.0.0.1:{port}{path}", "--dialect", dialect,
            "--requests", str(conversations), "--concurrency", str(conversations),
            "--connections", "1"]
    for s in sets:
        args += ["--set", s]
    env = dict(os.environ, PARLEY_API_KEY="k", ANTHROPIC_API_KEY="k", OPENAI_API_KEY="k")
    subprocess.run(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=60)


def frames(data):
    """(header byte 0, payload) of each whole unmasked frame."""
    pos = 0
    while pos + 2 <= len(data):
        b0, b1 = data[pos], data[pos + 1]
        n, hdr = b1 & 127, 2
        if n == 126:
            n, hdr = struct.unpack(">H", data[pos + 2:pos + 4])[0], 4
        elif n == 127:
            n, hdr = struct.unpack(">Q", data[pos + 2:pos + 10])[0], 10
        if pos + hdr + n > len(data):
            break
        yield b0, data[pos + hdr:pos + hdr + n]
        pos += hdr + n


def frame(b0, payload):
    n = len(payload)
    if n < 126:
        return bytes([b0, n]) + payload
    if n < 65536:
        return bytes([b0, 126]) + struct.pack(">H", n) + payload
    return bytes([b0, 127]) + struct.pack(">Q", n) + payload


def ws_seed(stream):
    """The recorded connection as fuzz_ws's input, or None."""
    head, sep, rest = stream.partition(b"\r\n\r\n")
    if not sep or b" 101 " not in head.split(b"\r\n")[0]:
        return None
    proto = re.search(rb"(?i)sec-websocket-protocol: *([^\r]*)", head)
    proto = proto.group(1) if proto else b""
    ids, sessions, out, dict_agreed = {}, {}, b"", False
    for i, (b0, payload) in enumerate(frames(rest)):
        if i == 0:  # hello: the harness writes its own
            dict_agreed = b"zstd_dict" in payload
            continue
        if b0 & 15 == 1:  # text (truncated JSON included): rename in place
            payload = re.sub(rb'"id":"(\d+)"', lambda m: b'"id":"%s"' % ids.setdefault(
                m.group(1), b"$%d" % len(ids)), payload)
            payload = re.sub(rb'"session":"([^"]*)"', lambda m: b'"session":"%s"' %
                             sessions.setdefault(m.group(1), b"s%d" % len(sessions)), payload)
        out += frame(b0, payload)
    config = {b"parley.v1": 1, b"parley.v1.zstd": 2, b"parley.v1.gzip": 3}.get(proto, 0)
    if dict_agreed:
        config |= 8
    n = max(1, min(3, len(ids) or 1))
    config |= (n - 1) << 5
    return bytes([config]) + out


def main():
    build, out = sys.argv[1], sys.argv[2]
    os.makedirs(os.path.join(out, "fuzz_ws"), exist_ok=True)
    os.makedirs(os.path.join(out, "fuzz_http"), exist_ok=True)
    ws_cases = {
        "plain_3": ((), ("compression=none",), 3),
        "zstd_dict_3": ((), (), 3),
        "zstd_nodict_1": (("--no-zstd-dict",), (), 1),
        "gzip_2": (("--no-zstd",), ("compression=gzip",), 2),
        "tiny_chunks_2": (("--chunk-bytes", "2"), ("compression=none",), 2),
        "rejected_retry_after_2": (("--reject-every", "1", "--retry-after-ms", "5"),
                                   ("compression=none",), 2),
        "overloaded_1": (("--reject-every", "1", "--reject-code", "overloaded"),
                         ("compression=none",), 1),
        "malformed_3": (("--malformed-every", "2"), ("compression=none",), 3),
        "unknown_2": (("--unknown-every", "1"), ("compression=none",), 2),
        "oversized_1": (("--oversized-every", "1", "--oversized-bytes", "1500"),
                        ("compression=none",), 1),
        "dropped_2": (("--drop-after-texts", "1"), ("compression=none",), 2),
    }
    for name, (server_flags, sets, n) in ws_cases.items():
        srv, port = start_refserver(build, *server_flags)
        proxy = Proxy(port)
        bench(build, proxy.port, "native", n, "retry.max.attempts=1", *sets)
        srv.terminate()
        srv.wait()
        with proxy.lock:
            seed = next((s for s in map(ws_seed, map(bytes, proxy.recorded)) if s), None)
        if seed:
            with open(os.path.join(out, "fuzz_ws", name), "wb") as f:
                f.write(seed)

    # The reference server's HTTP faults are not on its command line: the
    # recorded answers are the real ones, the faults are made from them.
    for dialect, bit in (("anthropic", 1), ("openai", 0)):
        recorded = {}
        for name, server_flags in (("ok", ()), ("tiny_chunks", ("--chunk-bytes", "1"))):
            srv, port = start_refserver(build, *server_flags)
            proxy = Proxy(port)
            bench(build, proxy.port, dialect, 1, "retry.max.attempts=1")
            srv.terminate()
            srv.wait()
            with proxy.lock:
                recorded[name] = next(bytes(r) for r in proxy.recorded if r)
        for name, response in http_variants(dialect, recorded["ok"]).items():
            recorded[name] = response
        for name, response in recorded.items():
            with open(os.path.join(out, "fuzz_http", f"{dialect}_{name}"), "wb") as f:
                f.write(bytes([bit]) + response)


def http_variants(dialect, ok):
    """Faults made from a recorded answer: what the vendors send."""
    head, _, body = ok.partition(b"\r\n\r\n")
    if b"chunked" in head.lower():
        body = dechunk(body)
    plain = re.sub(rb"(?i)\r\n(content-length|transfer-encoding):[^\r]*", b"", head)

    def answer(h, b, extra=b""):
        return h + extra + b"\r\nContent-Length: %d\r\n\r\n" % len(b) + b

    if dialect == "anthropic":
        err = (b'{"type":"error","error":{"type":"%s","message":"%s"},'
               b'"request_id":"req_1"}')
        mid = (b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
               b'"message":"Overloaded"}}\n\n')
        unknown = b'event: future_thing\ndata: {"type":"future_thing"}\n\n'
    else:
        err = b'{"error":{"type":"%s","message":"%s","code":null}}'
        mid = b'data: {"error":{"message":"server error","type":"server_error"}}\n\n'
        unknown = b'data: {"id":"x","object":"chat.completion.chunk","choices":[]}\n\n'
    json_head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json"
    events = body.split(b"\n\n")
    half = b"\n\n".join(events[:len(events) // 2]) + b"\n\n"
    return {
        "gzip": answer(plain, gzip.compress(body), b"\r\nContent-Encoding: gzip"),
        "rate_limited": answer(json_head % (429, b"Too Many Requests"),
                               err % (b"rate_limit_error", b"slow down"),
                               b"\r\nretry-after: 1\r\nretry-after-ms: 7"),
        "overloaded": answer(json_head % (529, b"Overloaded"),
                             err % (b"overloaded_error", b"Overloaded")),
        "internal": answer(json_head % (500, b"Internal Server Error"),
                           err % (b"api_error", b"Internal error"),
                           b"\r\nx-should-retry: false"),
        "error_mid_stream": answer(plain, half + mid),
        "dropped": plain + b"\r\n\r\n" + half,
        "malformed": answer(plain, half + b"data: {\"type\":\"content_blo\n\n"),
        "unknown": answer(plain, unknown + body),
    }


def dechunk(body):
    out, pos = b"", 0
    while True:
        end = body.find(b"\r\n", pos)
        if end < 0:
            return out
        n = int(body[pos:end].split(b";")[0], 16)
        if n == 0:
            return out
        out += body[end + 2:end + 2 + n]
        pos = end + 2 + n + 2


if __name__ == "__main__":
    main()
