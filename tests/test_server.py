"""`splade-anserini serve` as a client sees it: a real server process over a 200-document SciFact slice
indexed twice (Numba and Lucene), answering like `splade-anserini search`, explaining its hits from the
index, refusing bad requests in one JSON line while it keeps serving, safe under concurrent clients,
and stopped cleanly by Ctrl-C. The page is driven in headless Chromium (skipped without it)."""
from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

pytestmark = pytest.mark.jvm
ROOT = Path(__file__).resolve().parent.parent
N_DOCS, N_QUERIES = 200, 30
CHROMIUM = "/usr/bin/chromium"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(port: int, method: str, path: str, body=None) -> tuple[int, dict | list]:
    """One request on a fresh connection: (status, JSON body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
    conn.request(method, path, body=data, headers={"content-type": "application/json"} if data is not None else {})
    resp = conn.getresponse()
    raw = resp.read()
    conn.close()
    return resp.status, json.loads(raw)


def start_server(args: list[str], log: Path, timeout: float = 240.0) -> tuple[subprocess.Popen, int]:
    port = free_port()
    fh = open(log, "w")
    proc = subprocess.Popen([sys.executable, "-m", "splade_anserini", "serve", *args, "--port", str(port)],
                            stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited {proc.returncode}: {log.read_text()[-2000:]}")
        if log.read_text().startswith("serving"):
            return proc, port
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"the server did not start: {log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def sl(tmp_path_factory, data_dir, encoder):
    """The relevant documents of the first SciFact test queries plus others (200), encoded by
    splade-tiny, as a Numba and a Lucene index, and the queries."""
    from splade_anserini.conversion.jsonvector import VectorDoc, write_jsonvector
    from splade_anserini.conversion.quantize import guard_empty
    from splade_anserini.data import read_qrels, read_topics
    from splade_anserini.index.build import build_lucene_index
    from splade_anserini.index.numba_index import NumbaIndex
    from splade_anserini.provenance import for_documents, write_vectors

    root = tmp_path_factory.mktemp("served")
    sci = data_dir / "scifact"
    qrels, topics = read_qrels(sci / "qrels.test.txt"), read_topics(sci / "queries.test.tsv")
    qids = list(qrels)[:N_QUERIES]
    wanted = {d for q in qids for d in qrels[q]}
    lines = []
    with open(sci / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            if json.loads(line)["_id"] in wanted or len(lines) < N_DOCS - len(wanted):
                lines.append(line)
    (root / "corpus.jsonl").write_text("".join(lines), encoding="utf-8")
    docs = [json.loads(line) for line in lines]
    vecs = encoder.encode_documents([f"{d['title']} {d['text']}".strip() for d in docs], batch_size=32)
    (root / "vectors").mkdir()
    write_jsonvector(root / "vectors" / "part-00000.jsonl",
                     (VectorDoc(d["_id"], guard_empty(encoder.to_impacts(v))[0]) for d, v in zip(docs, vecs)))
    write_vectors(root / "vectors", for_documents(encoder, name="splade-tiny", factor=100.0))
    build_lucene_index(root / "vectors", root / "lucene", threads=1)
    from splade_anserini import provenance

    NumbaIndex.from_jsonvector(str(root / "vectors")).save(str(root / "numba"),
                                                           provenance=provenance.read_vectors(root / "vectors"))
    (root / "topics.tsv").write_text("".join(f"{q}\t{topics[q]}\n" for q in qids), encoding="utf-8")
    return SimpleNamespace(root=root, topics={q: topics[q] for q in qids}, docs={d["_id"]: d for d in docs})


@pytest.fixture(scope="module")
def server(sl):
    proc, port = start_server(["--index", f"num={sl.root / 'numba'}", "--index", f"luc={sl.root / 'lucene'}",
                               "--model", "splade-tiny", "--corpus", str(sl.root / "corpus.jsonl")],
                              sl.root / "server.log")
    yield SimpleNamespace(proc=proc, port=port, log=sl.root / "server.log")
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def search(port, index, text, hits=10, explain=False) -> dict:
    query = urllib.parse.urlencode({"query": text, "hits": hits, "explain": str(explain).lower()})
    status, body = call(port, "GET", f"/indexes/{index}/search?{query}")
    assert status == 200, body
    return body


@pytest.mark.parametrize("backend,index", [("numba", "num"), ("lucene", "luc")])
def test_answers_like_the_search_command(sl, server, tmp_path, backend, index):
    from splade_anserini.conversion.trec import read_run
    from splade_anserini.search.run import main as search_main

    run = tmp_path / f"{backend}.trec"
    assert search_main(["--index", str(sl.root / ("numba" if backend == "numba" else "lucene")), "--topics",
                        str(sl.root / "topics.tsv"), "--output", str(run), "--hits", "10", "--backend", backend,
                        "--threads", "1"]) == 0
    expected = read_run(run)
    for qid, text in sl.topics.items():
        got = search(server.port, index, text)["candidates"]
        assert [(c["docid"], c["score"]) for c in got] == \
            sorted(expected[qid].items(), key=lambda x: (-x[1], x[0])), qid
        assert [c["rank"] for c in got] == list(range(1, len(got) + 1))


def test_explanations_sum_to_the_scores_on_both_backends(sl, server):
    for text in list(sl.topics.values())[:8]:
        numba, lucene = (search(server.port, name, text, hits=5, explain=True) for name in ("num", "luc"))
        assert numba["query_vector"] == lucene["query_vector"] and numba["query_vector"]
        weights = {t["term"]: t["weight"] for t in numba["query_vector"]}
        for a, b in zip(numba["candidates"], lucene["candidates"]):
            assert a["explanation"] == b["explanation"]  # impacts read from two different indexes
            terms = a["explanation"]["terms"]
            assert sum(t["contribution"] for t in terms) == a["score"] == a["explanation"]["sum"] > 0
            assert all(t["contribution"] == t["query_weight"] * t["impact"] and t["impact"] > 0
                       and weights[t["term"]] == t["query_weight"] for t in terms)
            assert a["document"]["title"] == sl.docs[a["docid"]]["title"]


def test_pyserini_shapes_batches_documents_and_encoding(sl, server):
    port, text = server.port, next(iter(sl.topics.values()))
    assert call(port, "GET", "/indexes") == (200, ["num", "luc"])
    assert call(port, "GET", "/v1/indexes")[1] == ["num", "luc"]  # Pyserini 2.0's prefix
    one = search(port, "num", text)
    assert one["query"] == {"qid": "", "query_txt": text}
    assert set(one["candidates"][0]) == {"docid", "score", "rank", "document_txt"}
    doc = sl.docs[one["candidates"][0]["docid"]]
    assert one["candidates"][0]["document_txt"] == f"{doc['title']} {doc['text']}".strip()
    # GET search is answered before FastAPI (app.FastSearch), POST by FastAPI's route: the same answers
    status, posted = call(port, "POST", "/indexes/num/search", {"query": text, "hits": 10, "qid": "q1"})
    assert status == 200 and posted["query"]["qid"] == "q1" and posted["candidates"] == one["candidates"]
    got = call(port, "GET", "/v1/indexes/num/search?" + urllib.parse.urlencode({"query": text, "qid": "q1"}))
    assert got == (200, posted)
    batch = [{"qid": q, "query": t} for q, t in list(sl.topics.items())[:5]]
    status, many = call(port, "POST", "/indexes/luc/search", {"queries": batch, "hits": 3})
    assert status == 200 and [r["query"]["qid"] for r in many["results"]] == [b["qid"] for b in batch]
    for item, result in zip(batch, many["results"]):
        assert result["candidates"] == search(port, "luc", item["query"], hits=3)["candidates"]
    status, anserini = call(port, "GET", "/v1/num/search?" + urllib.parse.urlencode({"query": text}))
    assert status == 200 and anserini["api"] == "v1" and anserini["query"] == {"text": text}
    assert [c["docid"] for c in anserini["candidates"]] == [c["docid"] for c in one["candidates"]]
    docid = one["candidates"][0]["docid"]
    assert call(port, "GET", f"/indexes/luc/documents/{docid}")[1]["text"] == doc["text"]
    assert call(port, "GET", f"/v1/luc/doc/{docid}")[1]["doc"]["title"] == doc["title"]
    status, encoded = call(port, "GET", "/indexes/num/encode?" + urllib.parse.urlencode({"query": text}))
    assert status == 200 and encoded["vector"] == search(port, "num", text, explain=True)["query_vector"]
    assert call(port, "GET", "/health")[1]["status"] == "ok"
    assert "/indexes/{name}/search" in call(port, "GET", "/openapi.json")[1]["paths"]


BAD = [
    ("GET", "/indexes/num/search?query=", None, 400),
    ("GET", "/indexes/num/search?query=%20%E2%80%8B", None, 400),
    ("GET", "/indexes/num/search?query=aspirin&hits=100000", None, 400),
    ("GET", "/indexes/num/search?query=aspirin&hits=ten", None, 400),
    ("GET", "/indexes/num/search?query=" + "q" * (1 << 20), None, 414),
    ("POST", "/indexes/num/search", {"query": "q" * (1 << 20)}, 413),
    ("POST", "/indexes/num/search", {"query": "q" * 5000}, 413),
    ("POST", "/indexes/num/search", {"queries": [{"query": "a"}] * 500}, 413),
    ("POST", "/indexes/num/search", b"{not json", 400),
    ("GET", "/indexes/nope/search?query=aspirin", None, 404),
    ("GET", "/indexes/num/documents/..%2F..%2Fetc%2Fpasswd", None, 404),
    ("GET", "/indexes/num/documents/..", None, 404),
    ("GET", "/indexes/num/documents/%2Fetc%2Fpasswd", None, 404),
    ("GET", "/v1/num/doc/..%5C..%5Cwin.ini", None, 404),
    ("DELETE", "/indexes", None, 405),
]


def test_bad_requests_get_one_json_line_and_the_server_keeps_serving(sl, server):
    text = next(iter(sl.topics.values()))
    before = search(server.port, "luc", text)
    for method, path, body, status in BAD:
        got, answer = call(server.port, method, path, body)
        assert got == status and list(answer) == ["error"] and "\n" not in answer["error"], (path[:60], answer)
    assert search(server.port, "luc", text) == before
    assert server.proc.poll() is None


def test_concurrent_clients_get_the_answers_of_one_client(sl, server):
    texts = list(sl.topics.values())
    alone = {(ix, t): search(server.port, ix, t, explain=True) for ix in ("num", "luc") for t in texts[:10]}
    jobs = [key for key in alone for _ in range(3)]
    with ThreadPoolExecutor(16) as pool:
        together = list(pool.map(lambda key: search(server.port, key[0], key[1], explain=True), jobs))
    assert all(got == alone[key] for key, got in zip(jobs, together))


def test_the_load_benchs_client_reads_what_http_client_reads_on_one_connection(sl, server):
    from bench.serve_load import Client, request_bytes

    text = urllib.parse.quote(next(iter(sl.topics.values())))
    paths = [f"/indexes/num/search?query={text}&hits=5", f"/indexes/num/search?query={text}&hits=100000",
             "/indexes/nope/search?query=x", "/health", f"/indexes/luc/search?query={text}&hits=3"]
    client = Client(server.port)
    try:
        got = [client.get(request_bytes(path)) for path in paths]
        sock = client.sock
        assert sock is not None and client.get(request_bytes(paths[0]))[1] == got[0][1]  # kept alive
        assert client.sock is sock
    finally:
        client.close()
    assert [(status, json.loads(body)) for status, body in got] == [call(server.port, "GET", p) for p in paths]
    assert [status for status, _ in got] == [200, 400, 404, 200, 200]


def test_an_index_of_another_model_is_refused_in_one_line(sl, tmp_path):
    other = tmp_path / "numba"
    shutil.copytree(sl.root / "numba", other)
    header = json.loads((other / "header.json").read_text())
    header["provenance"]["model"]["sha256"] = "0" * 64
    (other / "header.json").write_text(json.dumps(header))
    proc = subprocess.run([sys.executable, "-m", "splade_anserini", "serve", "--index", str(other), "--model",
                           "splade-tiny", "--port", str(free_port())], capture_output=True, text=True, cwd=ROOT,
                          timeout=240)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "is not the model that encoded the index" in proc.stderr


def test_the_page_shows_hits_and_explanations_in_chromium(sl, server):
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no {CHROMIUM} (scripts/setup.sh installs Debian's chromium as root or in CI)")
    sync_api = pytest.importorskip("playwright.sync_api")
    text = "Vitamin D deficiency increases the risk of colorectal cancer."
    shot = Path(os.environ.get("SPLADE_ANSERINI_PAGE_SCREENSHOT", sl.root / "page.png"))
    expected = search(server.port, "num", text, explain=True)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"http://127.0.0.1:{server.port}/")
            page.wait_for_selector("body[data-ready='1']")
            assert page.eval_on_selector_all("#index option", "os => os.map(o => o.value)") == ["num", "luc"]
            page.fill("#query", text)
            page.click("#go")
            page.wait_for_selector("body[data-searched='1']")
            shown = page.eval_on_selector_all(".hit", PAGE_HITS)
            page.screenshot(path=str(shot), full_page=False)
        finally:
            browser.close()
    assert [(h["docid"], float(h["score"])) for h in shown] == \
        [(c["docid"], c["score"]) for c in expected["candidates"]] and len(shown) == 10
    for hit, cand in zip(shown, expected["candidates"]):
        assert hit["bar"] == [t["term"] for t in cand["explanation"]["terms"]]
        assert hit["text"] == cand["document"]["text"] and hit["title"] == cand["document"]["title"]
    assert shot.stat().st_size > 10_000


CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
#: What the page shows of each hit: its docid, score, text and the terms of its contribution bar.
PAGE_HITS = """hits => hits.map(h => ({docid: h.dataset.docid, score: h.dataset.score,
    title: (h.querySelector('.title') || {}).textContent || '', text: h.querySelector('.text').textContent,
    bar: [...h.querySelectorAll('.seg')].map(s => s.dataset.term)}))"""


@pytest.mark.slow
def test_an_onnx_export_serves_without_torch_and_answers_as_the_checkpoint_does(sl, server, tmp_path):
    from splade_anserini.serve.export_onnx import export

    export("splade-tiny", tmp_path / "export", log=lambda *_: None)
    proc, port = start_server(["--index", f"num={sl.root / 'numba'}", "--index", f"luc={sl.root / 'lucene'}",
                               "--model", str(tmp_path / "export"), "--corpus", str(sl.root / "corpus.jsonl")],
                              tmp_path / "onnx.log")
    try:
        health = call(port, "GET", "/health")[1]
        assert health["torch_imported"] is False and health["query_encoder"] == "onnx-screened"
        for text in list(sl.topics.values())[:10]:
            for index in ("num", "luc"):
                assert search(port, index, text, explain=True) == search(server.port, index, text, explain=True)
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0


def test_ctrl_c_stops_the_server_cleanly(server):
    server.proc.send_signal(signal.SIGINT)
    assert server.proc.wait(timeout=60) == 0
    log = server.log.read_text()
    assert log.rstrip().endswith("server stopped") and "Traceback" not in log
