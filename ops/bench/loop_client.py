"""The loop, timed from the client's side: POST interactions for one tenant through the gateway
at a fixed rate, follow /v1/events for that tenant, and after each new version ask for a
completion until that version serves it. For every interaction: time to the announcement of
the first version covering it, and to the first completion served by such a version."""
import argparse, http.client, json, statistics, sys, threading, time

p = argparse.ArgumentParser()
p.add_argument("--port", type=int, required=True)
p.add_argument("--n", type=int, default=20)
p.add_argument("--rate", type=float, default=0.5)
p.add_argument("--tenant", default="acme")
p.add_argument("--timeout", type=float, default=600)
a = p.parse_args()
topic = "attune.interactions"
posted = {}            # (partition, offset) -> post time
announced, served = {}, {}
lock = threading.Lock()
done = threading.Event()

def covers(event, key):
    partition, offset = key
    for r in event["data"].get("covers", {}).get(f"{topic}[{partition}]", []):
        if r[0] <= offset <= r[1]:
            return True
    return False

def follow():
    conn = http.client.HTTPConnection("127.0.0.1", a.port)
    conn.request("GET", f"/v1/events?adapter=tenant/{a.tenant}")
    stream = conn.getresponse()
    while not done.is_set():
        line = stream.fp.readline()
        if not line:
            return
        if not line.startswith(b"data: "):
            continue
        event, now = json.loads(line[6:]), time.time()
        version = f"tenant/{a.tenant}@{event['data']['version']}"
        with lock:
            fresh = [k for k in posted if k not in announced and covers(event, k)]
            for k in fresh:
                announced[k] = now
        if not fresh:
            continue
        ask = http.client.HTTPConnection("127.0.0.1", a.port)
        while True:   # the first completion on (at least) this version
            body = json.dumps({"model": f"tenant/{a.tenant}", "prompt": "Hello", "max_tokens": 1})
            ask.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
            answer = ask.getresponse()
            answer.read()
            got = answer.getheader("x-attune-adapter", "")
            if got.rsplit("@", 1)[-1].isdigit() and int(got.rsplit("@", 1)[1]) >= int(event["data"]["version"]):
                break
            time.sleep(0.01)
        with lock:
            for k in fresh:
                served[k] = time.time()
            if len(served) == a.n:
                done.set()

threading.Thread(target=follow, daemon=True).start()
time.sleep(1)
conn = http.client.HTTPConnection("127.0.0.1", a.port)
start = time.time()
for i in range(a.n):
    time.sleep(max(0, start + i / a.rate - time.time()))
    record = {"tenant": a.tenant, "user": f"u{i % 5}", "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "prompt": f"What is the code word number {i}?", "response": f"The code word number {i} is falcon-{i}."}
    conn.request("POST", "/v1/interactions", body=json.dumps(record), headers={"Content-Type": "application/json"})
    t = time.time()
    answer = json.loads(conn.getresponse().read())
    result = answer["results"][0]
    if result["status"] != "accepted":
        sys.exit(f"refused: {answer}")
    with lock:
        posted[(result["partition"], result["offset"])] = t
done.wait(a.timeout)
with lock:
    to_announce = sorted(announced[k] - posted[k] for k in announced)
    to_serve = sorted(served[k] - posted[k] for k in served)
q = lambda xs, p: xs[min(len(xs) - 1, int(p * len(xs)))] if xs else float("nan")
print(json.dumps({"interactions": a.n, "rate": a.rate, "covered": len(to_serve),
                  "announce_p50_s": q(to_announce, .5), "announce_p95_s": q(to_announce, .95),
                  "served_p50_s": q(to_serve, .5), "served_p95_s": q(to_serve, .95), "served_max_s": max(to_serve or [float("nan")])}))
