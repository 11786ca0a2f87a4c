"""Generated training queries: the template generator, an OpenAI-compatible endpoint (a local stub), reverse validation."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from core.data.datasets import Dataset, Document, Qrels, Query
from core.errors import WorkbenchError
from core.training.queries import (OpenAIQueries, TemplateQueries, first_sentence, generate_queries, identifier_words,
                                   make_generator)

TERMINAL = '''def get_terminal_width(fallback=80):
    import shutil
    return shutil.get_terminal_size((fallback, 24)).columns
'''


def test_first_sentence_drops_markup_and_the_rest_of_the_docstring():
    assert first_sentence("Returns the `width` (in columns) of the terminal.  More text.\n\nArgs: x") == "Returns the width of the terminal"
    assert first_sentence("Parse a header:\n    key: value") == "Parse a header"


def test_identifier_words_split_snake_and_camel_case():
    assert identifier_words("read_json_file") == ["read", "json", "file"]
    assert identifier_words("readJsonFile") == ["read", "json", "file"]


def test_template_queries_read_like_searches_language_first():
    queries = TemplateQueries().generate("Returns the width of the terminal window, in columns.", TERMINAL, "python")
    assert queries == ["python get width terminal window in columns", "python get terminal width"]
    assert TemplateQueries().generate("x", "def f():\n    return 1\n    pass", "python") == []  # nothing search-like to say


class _ChatStub(BaseHTTPRequestHandler):
    """A stand-in for an OpenAI-compatible server: answers /v1/chat/completions, records what it was asked."""

    requests: list[dict] = []

    def do_POST(self):  # noqa: N802 (the http.server API)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
        if self.path != "/v1/chat/completions":
            self.send_response(404)
            self.end_headers()
            return
        content = "1. python terminal width\n- \"get console columns\"\n\nhow wide is the terminal python\nextra line"
        payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def chat_server():
    _ChatStub.requests = []
    server = HTTPServer(("127.0.0.1", 0), _ChatStub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_openai_compatible_endpoint_is_asked_in_the_chat_format_and_its_lines_become_queries(chat_server):
    generator = OpenAIQueries(chat_server, "local-model", api_key="sekret")
    queries = generator.generate("Returns the terminal width.", TERMINAL, "python")
    assert queries == ["python terminal width", "get console columns", "how wide is the terminal python"]
    sent = _ChatStub.requests[0]
    assert sent["path"] == "/v1/chat/completions" and sent["auth"] == "Bearer sekret"
    assert sent["body"]["model"] == "local-model" and "get_terminal_width" in sent["body"]["messages"][0]["content"]


def test_an_unreachable_or_wrong_endpoint_is_one_clear_error(chat_server):
    with pytest.raises(WorkbenchError, match="no usable chat completion"):
        OpenAIQueries(chat_server.replace("/v1", "/nope"), "m").generate("d", TERMINAL, "python")
    with pytest.raises(WorkbenchError, match="endpoint URL and a model"):
        make_generator("openai")


def _doc2code() -> Dataset:
    functions = {
        "width": ("Returns the width of the terminal window.", TERMINAL),
        "json": ("Load a JSON document from a path.", "def read_json_file(path):\n    import json\n    with open(path) as f:\n        return json.load(f)"),
        "vague": ("Do the thing with the stuff.", "def fx(a, b):\n    c = a ^ b\n    return c << 2"),
    }
    documents = tuple(Document(f"d-{key}", code, language="python") for key, (_, code) in functions.items())
    documents += tuple(Document(f"noise-{i}", f"def helper_{i}(x):\n    return x * {i} + thing_{i}(stuff)", language="python")
                       for i in range(30))
    queries = tuple(Query(f"q-{key}", doc, "python") for key, (doc, _) in functions.items())
    return Dataset("tiny-doc2code", documents, queries, Qrels({f"q-{key}": {f"d-{key}": 1} for key in functions}))


def test_reverse_validation_keeps_only_queries_whose_function_bm25_finds_in_the_top_k(workspace):
    train = _doc2code()
    generated = generate_queries(train, TemplateQueries(), workspace, k=1)
    texts = {q.id: q.text for q in generated.dataset.queries}
    assert texts["q-width"] == "python get width terminal window"
    assert texts["q-json"].startswith("python load json document")
    # "python thing stuff" matches the noise helpers' "thing_i(stuff)" better than fx: dropped as a query ...
    assert "q-vague" not in texts
    assert "d-vague" in {d.id for d in generated.dataset.documents}  # ... while its code stays as a negative
    assert generated.functions == 3 and generated.kept_queries == 2 and generated.validated >= 2
    assert generated.describe()["validation"] == {"k": 1, "retriever": "bm25"}

    unvalidated = generate_queries(train, TemplateQueries(), workspace, k=0)
    assert unvalidated.kept_queries == 3 and unvalidated.validated == 0
