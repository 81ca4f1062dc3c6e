"""Load for `attune gateway`: single-record POSTs from C keep-alive connections, then bulk
NDJSON POSTs; prints one JSON line per phase (records/s, acknowledgement latency p50/p99).
Every answer is checked: a record not accepted fails the run."""
import argparse, http.client, json, sys, threading, time

def record(i):
    return json.dumps({"tenant": f"t{i % 100}", "user": f"u{i}", "time": "2026-12-02T10:00:00Z",
                       "prompt": f"Question {i}?", "response": f"Answer {i}."})

def post(conn, body, content_type):
    conn.request("POST", "/v1/interactions", body=body, headers={"Content-Type": content_type})
    answer = conn.getresponse()
    data = json.loads(answer.read())
    if answer.status != 200 or data["refused"]:
        sys.exit(f"refused: {answer.status} {data}")
    return data["accepted"]

def phase(name, port, requests, workers):
    latencies, lock, count = [], threading.Lock(), [0]
    def run(chunk):
        conn = http.client.HTTPConnection("127.0.0.1", port)
        for body, content_type in chunk:
            t = time.perf_counter()
            n = post(conn, body, content_type)
            with lock:
                latencies.append(time.perf_counter() - t)
                count[0] += n
    chunks = [requests[k::workers] for k in range(workers)]
    start = time.perf_counter()
    threads = [threading.Thread(target=run, args=(c,)) for c in chunks]
    for t in threads: t.start()
    for t in threads: t.join()
    wall = time.perf_counter() - start
    latencies.sort()
    q = lambda p: latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000
    print(json.dumps({"phase": name, "records": count[0], "requests": len(requests), "seconds": wall,
                      "records_s": count[0] / wall, "p50_ms": q(0.50), "p99_ms": q(0.99)}), flush=True)

p = argparse.ArgumentParser()
p.add_argument("--port", type=int, required=True)
p.add_argument("--single", type=int, default=2000)
p.add_argument("--concurrency", type=int, default=8)
p.add_argument("--bulk", type=int, default=50000)
p.add_argument("--batch", type=int, default=500)
a = p.parse_args()
phase("single", a.port, [(record(i), "application/json") for i in range(a.single)], a.concurrency)
bodies = ["\n".join(record(a.single + j) for j in range(i, min(a.bulk, i + a.batch))) for i in range(0, a.bulk, a.batch)]
phase("bulk", a.port, [(b, "application/x-ndjson") for b in bodies], 2)
