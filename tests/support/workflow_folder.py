"""Packaged workflow folders and spreadsheets for the `marketlab run` tests.

A folder is what a learner takes home: Lab 2's workflow.py (written by the same save_workflow call
as Lab 2's solution, so the tests do not depend on the lab having been run), a brief.yaml and an
evaluate.py written the way Lab 3 teaches (checks, run_checks, ACCEPTANCE). The CSV is the course's
product table exported with other column names, as a company's own export would be.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, Field

from marketlab import data, reference

# The course's column -> the name in "our" export.
THEIR_NAMES = {"sku": "product_code", "name": "title", "key_specs": "specs"}
MAPPING = "{" + ", ".join(f"{ours}: {theirs}" for ours, theirs in THEIR_NAMES.items()) + "}"

EVALUATE = '''"""Checks for our product copy (written as Lab 3 teaches)."""

import pandas as pd

from marketlab.evaluate.checks import banned_words, make_check
from marketlab.evaluate.compare import Acceptance
from marketlab.evaluate.suite import run_checks


def names_product(text, product, channel):
    """The description names the product."""
    if product and str(product["name"]).lower() not in text.lower():
        return "does not name " + str(product["name"])
    return None


CHECKS = [banned_words(), make_check("names_product", names_product)]
ACCEPTANCE = Acceptance(min_pass_rate={min_pass_rate}, must_pass=["banned_words"])


def evaluate(outputs_df: pd.DataFrame, products_df: pd.DataFrame) -> pd.DataFrame:
    return run_checks(outputs_df, products_df, CHECKS, text="description")
'''


class ProductCopy(BaseModel):
    """Web copy for one product (Lab 2's solution schema)."""

    headline: str = Field(description="one short line that names the product", max_length=60)
    description: str = Field(description="the web description, using only the facts given")


def lab02_workflow_source() -> str:
    """The workflow.py Lab 2's solution saves: reference brief and messages, its schema, rules and settings."""
    from marketlab.workflow import Rules
    from marketlab.workflow.artifact import workflow_source

    brief = reference.load_brief()
    rules = Rules.from_brief(brief, "description").with_banned_words(data.load_brand_voice()["banned_words"])
    return workflow_source(brief, reference.build_messages, ProductCopy, rules, {"workers": 4, "max_tokens": 300})


def lab02_folder(root: Path, min_pass_rate: float = 0.5, title: str | None = None) -> Path:
    """A folder with Lab 2's workflow.py, its brief as brief.yaml and an evaluate.py with this acceptance."""
    from marketlab.workflow import load_workflow

    folder = root / "our-workflow"
    folder.mkdir(parents=True)
    (folder / "workflow.py").write_text(lab02_workflow_source(), encoding="utf-8")
    brief = load_workflow(folder / "workflow.py").BRIEF
    if title is not None:
        brief = brief.model_copy(update={"title": title})
    (folder / "brief.yaml").write_text(brief.to_yaml(), encoding="utf-8")
    (folder / "evaluate.py").write_text(EVALUATE.replace("{min_pass_rate}", repr(min_pass_rate)), encoding="utf-8")
    return folder


def our_products(rows: int = 3) -> pd.DataFrame:
    """The first course products, with our export's column names."""
    return data.load("products").head(rows).rename(columns=THEIR_NAMES)


def write_csv(table: pd.DataFrame, path: Path) -> Path:
    """Write a table as a UTF-8 CSV and return the path."""
    table.to_csv(path, index=False)
    return path


def product_name(body: dict[str, Any]) -> str:
    """The product a request is about, read from the user message run_batch sent ("... for the NAME, ...")."""
    text = body["messages"][-1]["content"] if body.get("messages") else ""
    if " for the " not in text:
        return ""
    return text.split(" for the ", 1)[1].split(",", 1)[0].split("\n", 1)[0].strip()


def copy_reply(name: str, extra: str = "") -> str:
    """A ProductCopy reply that meets Lab 2's rules: 40 to 120 words, no banned word."""
    words = ("It packs small, sets up fast and keeps its promise on long weekends outdoors. Light enough for "
             "day hikes, sturdy enough for a wet week at camp, and easy to care for after every trip you take with "
             "friends or family along the trail.")
    return json.dumps({"headline": f"Meet the {name}"[:60], "description": f"The {name} is ready. {extra} {words}"})


def workflow_needing_column(root: Path, column: str) -> Path:
    """A folder whose build_messages reads record[column] (a column our export does not have)."""
    folder = root / "needs-column"
    folder.mkdir(parents=True)
    (folder / "workflow.py").write_text(textwrap.dedent(f'''
        from pydantic import BaseModel
        from marketlab.workflow import run_batch

        class Line(BaseModel):
            line: str

        def build_messages(record):
            return [{{"role": "user", "content": "Write one line about " + str(record[{column!r}])}}]

        def run(df, client, model=None, **overrides):
            return run_batch(df, build_messages, Line, client, model, **overrides)
        '''), encoding="utf-8")
    return folder


def workflow_losing_a_row(root: Path) -> Path:
    """A folder whose run() drops the last row of run_batch's table."""
    folder = root / "loses-a-row"
    folder.mkdir(parents=True)
    source = lab02_workflow_source()
    source += textwrap.dedent('''

        _whole_run = run


        def run(df, client, model=None, **overrides):
            return _whole_run(df, client, model, **overrides).iloc[:-1]
        ''')
    (folder / "workflow.py").write_text(source, encoding="utf-8")
    return folder
