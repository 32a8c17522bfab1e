"""Issue 25: a refusal (allowance used, rate limit, model restarting, too large) reads as one line in a notebook.

A real kernel runs a cell whose call an endpoint refuses, behind the real openai SDK (the refusal is
injected by a transport, as the hub's gateway sends it); the cell still fails, so "Run All" stops there.
"""

from __future__ import annotations

import nbclient
import nbformat
import pytest

# Each test runs a real Jupyter kernel.
pytestmark = pytest.mark.nbgrader

CELL = '''
import httpx2, openai
from marketlab.llm import refusals

def refuse(request):
    return httpx2.Response({status}, json={{"error": {{"message": {message!r}, "type": "x", "code": {code!r}}}}})

client = openai.OpenAI(api_key="k", base_url="http://gateway/v1", max_retries=0,
                       http_client=httpx2.Client(transport=httpx2.MockTransport(refuse)))
refusals.install()
client.chat.completions.create(model="m", messages=[{{"role": "user", "content": "hi"}}])
'''


def _run(*cells: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    nbclient.NotebookClient(nb, kernel_name="python3", allow_errors=True, timeout=120).execute()
    return nb


@pytest.mark.parametrize("status, code, message", [
    (429, "insufficient_quota", "Your daily allowance of 3,000 tokens is used; it resets at 00:00 UTC (in 20 h)."),
    (503, "model_restarting", "The hub's model stopped at 10:02 UTC and is restarting. Run the cell again in a minute."),
    (413, "request_too_large", "The request is over 1000 kB; send shorter messages."),
])
def test_a_refusal_is_one_plain_line_and_still_an_error(status, code, message) -> None:
    nb = _run(CELL.format(status=status, code=code, message=message),
              "import sys\nprint(type(sys.last_value).__name__, sys.last_value.status_code)")
    errors = [o for o in nb.cells[0].outputs if o.output_type == "error"]
    assert len(errors) == 1, nb.cells[0].outputs  # the cell failed: Run All stops here
    assert errors[0].traceback[0] == f"❌ The model refused this request ({status}): {message}"
    assert len(errors[0].traceback) == 2 and "Traceback" not in "\n".join(errors[0].traceback)
    assert nb.cells[1].outputs[0].text.split()[1] == str(status)  # the SDK's own error, for a programmer


def test_other_errors_keep_their_traceback() -> None:
    nb = _run(CELL.format(status=400, code="bad", message="Unknown parameter."))
    error = next(o for o in nb.cells[0].outputs if o.output_type == "error")
    assert error.ename == "BadRequestError" and len(error.traceback) > 2
