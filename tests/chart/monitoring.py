"""What the monitoring tests share: the rules, the dashboards' expressions, PromQL names."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "charts" / "herald" / "files" / "prometheus-rules.yaml"
DASHBOARDS = ROOT / "charts" / "herald" / "dashboards"
RULE_TESTS = Path(__file__).parent / "rules-test.yaml"
KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "atan2"}


def rules() -> list[dict[str, Any]]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def dashboard_exprs() -> list[tuple[str, str, str]]:
    """(dashboard file, panel title, expr) for every query of every panel."""
    out = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                out.append((path.name, panel["title"], target["expr"]))
    return out


def concrete(expr: str, rate_interval: str = "5m") -> str:
    """A dashboard query with Grafana's variables replaced, as Grafana would send it."""
    return expr.replace("$__rate_interval", rate_interval).replace("$namespace", ".*")


def metric_names(expr: str) -> set[str]:
    """Series names a PromQL expression reads (functions, keywords, labels excluded)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b\d+(\.\d+)?(e[+-]?\d+)?\b", " ", e)
    names = set()
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", e):
        token = m.group(0)
        if e[m.end() :].lstrip().startswith("(") or token.lower() in KEYWORDS:
            continue
        names.add(token)
    return names


def exported_metric_names() -> set[str]:
    """Every series name Herald's code defines with prometheus_client."""
    names: set[str] = set()
    pattern = re.compile(r"\b(Counter|Gauge|Histogram|Summary)\(\s*\"([a-zA-Z_:][a-zA-Z0-9_:]*)\"")
    for folder in ("services", "gateway", "operator"):
        for path in (ROOT / folder).rglob("*.py"):
            if "/tests/" in path.as_posix():
                continue
            for kind, name in pattern.findall(path.read_text()):
                if kind == "Counter":
                    base = name.removesuffix("_total")
                    names |= {f"{base}_total", f"{base}_created"}
                elif kind in ("Histogram", "Summary"):
                    names |= {f"{name}_bucket", f"{name}_count", f"{name}_sum", f"{name}_created"}
                else:
                    names.add(name)
    return names
