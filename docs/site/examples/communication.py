"""Talking between processes: a Pipe, a Queue, and a Listener/Client pair with HMAC authentication."""

import procpar as multiprocessing
from procpar.connection import Client, Listener


def echo(conn):
    while (message := conn.recv()) is not None:
        conn.send(message[::-1])
    conn.close()


def produce(queue, n):
    for i in range(n):
        queue.put(i * i)
    queue.put(None)


def serve(listener):
    with listener.accept() as conn:
        conn.send(("hello", conn.recv()))
    try:
        listener.accept()  # the next client knows the wrong key: refused on both ends
    except multiprocessing.AuthenticationError:
        pass


if __name__ == "__main__":
    parent, child = multiprocessing.Pipe()
    p = multiprocessing.Process(target=echo, args=(child,))
    p.start()
    parent.send("procpar")
    print(parent.recv())
    parent.send(None)
    p.join()

    queue = multiprocessing.Queue()
    p = multiprocessing.Process(target=produce, args=(queue, 5))
    p.start()
    print(list(iter(queue.get, None)))
    p.join()

    listener = Listener(("127.0.0.1", 0), authkey=b"secret")
    p = multiprocessing.Process(target=serve, args=(listener,))
    p.start()
    with Client(listener.address, authkey=b"secret") as conn:
        conn.send("client")
        print(conn.recv())
    try:
        Client(listener.address, authkey=b"wrong")
    except multiprocessing.AuthenticationError as exc:
        print("refused:", type(exc).__name__)
    p.join()
    listener.close()
