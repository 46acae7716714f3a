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

Usage: node.py PORT CHAINDATA DIFFICULTY [PEER_URL ...]
It prints "listening on PORT" once it serves, and one line per /mined.
"""

import hashlib
import http.server
import json
import os
import sys
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


def valid_chain(blocks, difficulty):
    ordered = sorted(blocks, key=lambda b: int(b["index"]))
    return all(valid_next(a, b, difficulty) for a, b in zip(ordered, ordered[1:]))


class Node:
    def __init__(self, chaindata, difficulty, peers):
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
        name = "%06d.json" % int(block["index"])
        with open(os.path.join(self.chaindata, name), "w") as f:
            json.dump({k: str(block[k]) for k in
                       ("index", "timestamp", "prev_hash", "data", "nonce", "hash")}, f)


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
                self.answer(200, node.local())
            else:
                self.answer(404, {"error": "not found"})

        def do_POST(self):
            length = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(length)
            if self.path != "/mined":
                self.answer(404, {"error": "not found"})
                return
            try:
                block = json.loads(body)
                confirmed = valid_next(node.tip(), block, node.difficulty)
            except Exception:
                confirmed = False
            if confirmed:
                node.save(block)
            print("mined %s %s" % (block.get("index") if isinstance(block, dict) else "?",
                                   "confirmed" if confirmed else "refused"), flush=True)
            self.answer(200, {"confirmed": confirmed})

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print("listening on %d" % port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    port, chaindata, difficulty = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    serve(port, Node(chaindata, difficulty, sys.argv[4:]))
