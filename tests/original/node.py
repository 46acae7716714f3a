#!/usr/bin/env python3
"""A stand-in for the original Python node of the series (part 2), written
from its behaviour, for interoperability tests: standard library only.

What it does, as the original does:
- at start it reads every chaindata/*.json block file, asks each peer for
  GET /blockchain.json, and keeps the longest valid chain, saving its blocks;
- GET /blockchain.json serves its block files in directory order (as
  os.listdir gives them, not sorted by index), read from disk each time;
- POST /mined takes a block that extends its tip (index, link, hash and
  proof of work checked), saves it, and answers {"confirmed": true};
  anything else gets {"confirmed": false}. It learns blocks no other way.
- there is no /status: it answers 404 there, as to any other path.

With --master it behaves as the original's master branch does instead:
- POST /mined stores any block whose hash and proof of work are right under
  its index, whatever it links to (overwriting the file there), and answers
  200 {"received": true} before it validates; --drop-every N drops every Nth
  such block after answering 200 (its scheduler skips a job while one runs);
- --fail-every N answers every Nth POST /mined with a 500 HTML error page;
- --mine-every SECONDS mines a block on its highest one that often and posts
  it to its peers' /mined, with no X-Jbc-Peer header, as the original does.

Usage: node.py PORT CHAINDATA DIFFICULTY [PEER_URL ...] [--master]
       [--drop-every N] [--fail-every N] [--mine-every SECONDS]
It prints "listening on PORT" once it serves, one line per /mined:
"mined INDEX HASH stored|dropped|failed|confirmed|refused", and one per
GET /blockchain.json: "served N blocks".
"""

import hashlib
import http.server
import json
import os
import sys
import threading
import time
import urllib.request


def block_hash(block):
    text = "%s%s%s%s%s" % (
        int(block["index"]),
        block["prev_hash"],
        block["data"],
        int(block["timestamp"]),
        int(block["nonce"]),
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def valid_next(prev, block, difficulty):
    return (
        int(block["index"]) == int(prev["index"]) + 1
        and block["prev_hash"] == prev["hash"]
        and block_hash(block) == block["hash"]
        and block["hash"].startswith("0" * difficulty)
    )


def proof_ok(block, difficulty):
    return block_hash(block) == block["hash"] and block["hash"].startswith("0" * difficulty)


def valid_chain(blocks, difficulty):
    ordered = sorted(blocks, key=lambda b: int(b["index"]))
    return all(valid_next(a, b, difficulty) for a, b in zip(ordered, ordered[1:]))


class Node:
    def __init__(self, chaindata, difficulty, peers):
        self.lock = threading.Lock()
        self.save_lock = threading.Lock()
        self.posts = 0
        self.stored = 0
        self.chaindata = chaindata
        self.difficulty = difficulty
        os.makedirs(chaindata, exist_ok=True)
        chain = self.local()
        for peer in peers:
            try:
                with urllib.request.urlopen(peer.rstrip("/") + "/blockchain.json", timeout=5) as r:
                    theirs = json.load(r)
            except Exception as error:  # a peer that is down is skipped
                print("peer %s: %s" % (peer, error), flush=True)
                continue
            if len(theirs) > len(chain) and valid_chain(theirs, difficulty):
                chain = theirs
        for block in chain:
            self.save(block)

    def local(self):
        blocks = []
        for name in os.listdir(self.chaindata):
            if name.endswith(".json"):
                with open(os.path.join(self.chaindata, name)) as f:
                    blocks.append(json.load(f))
        return blocks

    def tip(self):
        return max(self.local(), key=lambda b: int(b["index"]))

    def save(self, block):
        # One writer at a time, as the original's single-threaded Flask
        # server (2017) had: two threads writing one file at once (both
        # nodes posting a block together) would interleave into a file that
        # never parses again. A reader may still meet a file half written.
        name = "%06d.json" % int(block["index"])
        with self.save_lock, open(os.path.join(self.chaindata, name), "w") as f:
            json.dump({k: str(block[k]) for k in
                       ("index", "timestamp", "prev_hash", "data", "nonce", "hash")}, f)


def report(block, what):
    if isinstance(block, dict):
        print("mined %s %s %s" % (block.get("index"), block.get("hash"), what), flush=True)
    else:
        print("mined ? ? %s" % what, flush=True)


def mine_forever(node, every, peers):
    """Mines a block on its highest one every `every` seconds, saves it and
    posts it to every peer's /mined (no peer header), as master does."""
    while True:
        time.sleep(every)
        with node.lock:
            tip = node.tip()
            block = {"index": int(tip["index"]) + 1, "timestamp": int(time.time()),
                     "prev_hash": tip["hash"], "data": "mined by the original", "nonce": 0}
            while True:
                block["hash"] = block_hash(block)
                if block["hash"].startswith("0" * node.difficulty):
                    break
                block["nonce"] += 1
            node.save(block)
        print("self-mined %s %s" % (block["index"], block["hash"]), flush=True)
        for peer in peers:
            request = urllib.request.Request(
                peer.rstrip("/") + "/mined", data=json.dumps(block).encode(),
                headers={"Content-Type": "application/json"}, method="POST")
            try:
                urllib.request.urlopen(request, timeout=5).read()
            except Exception as error:
                print("posting to %s: %s" % (peer, error), flush=True)


class Options:
    def __init__(self, args):
        self.master = "--master" in args
        self.drop_every = self.number(args, "--drop-every")
        self.fail_every = self.number(args, "--fail-every")
        self.mine_every = self.number(args, "--mine-every", float)

    @staticmethod
    def number(args, flag, kind=int):
        return kind(args[args.index(flag) + 1]) if flag in args else 0


def positional(args):
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--master":
            pass
        elif arg.startswith("--"):
            skip = True
        else:
            out.append(arg)
    return out


def serve(port, node):
    class Handler(http.server.BaseHTTPRequestHandler):
        def answer(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/blockchain.json":
                chain = node.local()
                print("served %d blocks" % len(chain), flush=True)
                self.answer(200, chain)
            else:
                self.answer(404, {"error": "not found"})

        def do_POST(self):
            length = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(length)
            if self.path != "/mined":
                self.answer(404, {"error": "not found"})
                return
            if options.master:
                self.master_mined(body)
                return
            try:
                block = json.loads(body)
                confirmed = valid_next(node.tip(), block, node.difficulty)
            except Exception:
                confirmed = False
            if confirmed:
                node.save(block)
            report(block, "confirmed" if confirmed else "refused")
            self.answer(200, {"confirmed": confirmed})

        def master_mined(self, body):
            with node.lock:
                node.posts += 1
                posts = node.posts
            try:
                posted = json.loads(body)
            except Exception:
                posted = None
            if options.fail_every and posts % options.fail_every == 0:
                page = ("<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 3.2 Final//EN\">\n"
                        "<title>500 Internal Server Error</title>\n"
                        "<h1>Internal Server Error</h1>\n"
                        "<p>The server encountered an internal error and was unable to "
                        "complete your request.</p>\n").encode()
                self.send_response(500)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)
                report(posted, "failed")
                return
            block = posted
            try:
                ok = proof_ok(block, node.difficulty)
            except Exception:
                ok = False
            self.answer(200, {"received": True})
            if not ok:
                report(block, "refused")
                return
            with node.lock:
                node.stored += 1
                dropped = options.drop_every and node.stored % options.drop_every == 0
            if dropped:
                report(block, "dropped")
            else:
                node.save(block)
                report(block, "stored")

        def log_message(self, *args):
            pass

    class Server(http.server.ThreadingHTTPServer):
        # socketserver's default backlog of 5 overflows when two nodes post
        # and a test reads at once on a loaded machine (connections reset:
        # "error sending request"); Flask's server, the original's, listens
        # with 128.
        request_queue_size = 128

    server = Server(("127.0.0.1", port), Handler)
    print("listening on %d" % port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    options = Options(sys.argv[4:])
    peers = positional(sys.argv[4:])
    port, chaindata, difficulty = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    node = Node(chaindata, difficulty, peers)
    if options.mine_every:
        threading.Thread(target=mine_forever, args=(node, options.mine_every, peers),
                         daemon=True).start()
    serve(port, node)
