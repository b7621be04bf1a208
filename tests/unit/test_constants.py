"""One home per constant: the known literals appear nowhere in the code but in their home module.

Each rule below names a figure, the module that holds it, and a pattern anchored on the names such a
copy carries (``comm_sms ... = 20``, ``completion_rtol ... 1e-2``), so other numbers do not match.
Only code is read: comments and docstrings are dropped (they may quote the figure and its source).
A hit outside the home fails with its ``file:line``.

Files another change is rewriting are listed in :data:`PENDING` (``# pending: being rewritten``): the
engineer rewriting one removes it from the list when it takes the constant from its home.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("sim", "reports", "calibrate", "benchmarks")

NUM = r"(?<![\w.])"  # a number starts here (not inside a name or another number)
END = r"(?![\w.])"  # and ends here
ALONE = END + r"(?!\s*[-+*/])"  # and is the whole value (``4096``, not ``4096 * 4``)


@dataclass(frozen=True)
class Rule:
    name: str
    home: str  # the module holding the figure (hits there are the definition)
    patterns: tuple[str, ...]
    examples: tuple[str, ...]  # code that must match (the copies found in review)
    not_copies: tuple[str, ...] = ()  # similar code that must not match
    pending: dict[str, str] = field(default_factory=dict)  # file -> what still holds a copy
    other_sources: dict[str, str] = field(default_factory=dict)  # file -> the other source of an equal figure


RULES = (
    Rule(
        "communication SMs (20)",
        "sim/hardware/gpu.py",  # DEEPSEEK_COMM_SMS
        (rf"(?i)\w*sms\w*\b.*(?:=|\(|\bin\b)\s*\(?\s*\"?{NUM}20\"?{END}",),
        (
            "    comm_sms: int = 20",
            '    sms: int = Field(20, ge=0, description="SMs")',
            '    sms: Annotated[str, typer.Option("--sms", help="comm SMs")] = "20",',
            '    sms: Annotated[int, typer.Option("--sms", parser=Int(0, MAX_SMS))] = 20,',
            "        for sms in (20, 24):",
        ),
        ("SM_COUNTS = (8, 12, 16, 20, 24, 32)", "    sms: int = 120", "    comm_sms = 2 * 10"),
    ),
    Rule(
        "compute SMs (112 = 132 - 20)",
        "sim/hardware/gpu.py",  # DEEPSEEK_COMPUTE_SMS
        (rf"(?i)\w*sms\w*\s*(?::[^=]*)?=\s*{NUM}112{END}", rf"(?i)\w*sms\w*\b[^=]*\]\s*=\s*{NUM}112{END}"),
        ("TRACE_SMS = 112", "    compute_sms: int = 112,", '        int, typer.Option("--compute-sms")\n    ] = 112,'),
        ("        cases += [(192, 128, True, sms) for sms in (112, 64)]",),
    ),
    Rule(
        "H800 SM count (132)",
        "sim/hardware/gpu.py",  # GpuSpec.sms
        (rf"{NUM}132{END}",),
        ('int(p.get("sms", 132))', "    channels = (132 - TRACE_SMS) // 2"),
        ("x = 1320", "y = 13.2"),
    ),
    Rule(
        "completion tolerance (1e-2)",
        "sim/network/tolerance.py",  # COMPLETION_RTOL
        (rf"(?i)completion[_-]rtol\b.*{NUM}(?:\d(?:\.\d+)?e-\d+|0\.0+\d+){END}",),
        (
            "    completion_rtol: float = 1e-2",
            "        completion_rtol: float = 1e-3,",
            "    rtol = sc.cluster.completion_rtol if sc.cluster is not None else 1e-2",
            '    ap.add_argument("--completion-rtol", type=float, default=1e-2)',
            '    completion_rtol: Annotated[\n        float, typer.Option("--completion-rtol")\n    ] = 0.01,',
        ),
        ("    rtol: float = 1e-9,", "    assert rel < 1e-3", "    completion_rtol: float = COMPLETION_RTOL"),
    ),
    Rule(
        "FP8 tile bytes (1 + 4/128)",
        "sim/units.py",  # FP8_TILE_BYTES, FP8_TILE_SCALE_BYTES
        (rf"{NUM}4(?:\.0)?\s*(?:/|\*[^/\n]*//)\s*128(?:\.0)?{END}", rf"{NUM}1\.03125{END}"),
        (
            "FP8_TILE = 1.0 + 4.0 / 128",
            "    dispatch_bytes_per_elem: float = 1.0 + 4.0 / 128.0",
            "        nbytes=2.0 * r * h * (1 + 4 / 128),",
            "        nbytes = 2 * tokens * hidden + tokens * hidden + 4 * tokens * hidden // 128",
        ),
        ("    hidden = p.scale(7168) // 128 * 128 or 128", "    blocks_k = k // 128", "x = 4 * 128"),
    ),
    Rule(
        "BF16 bytes (2)",
        "sim/units.py",  # BF16_BYTES
        (rf"(?i)\w*bytes\w*\s*(?::[^=]*)?=\s*{NUM}2(?:\.0)?{ALONE}",),
        (
            "ACTIVATION_BYTES = 2  # BF16",
            "    weight_bytes: float = 2.0  # BF16 working weights",
            "    combine_bytes_per_elem: float = 2.0",
            "OUTPUT_BYTES = 2",
        ),
        ("    nbytes = 2 * tokens * hidden", "    grad_reduce_bytes: int = 4", "    token_id_bytes: float = 8.0"),
    ),
    Rule(
        "NIC rate (400 Gb/s = 50 GB/s)",
        "sim/hardware/gpu.py",  # NIC_Gbps
        (
            rf"(?i)nic\w*\b.*{NUM}400(?:\.0)?{END}",
            rf"(?i)\w*(?:bandwidth|gbps)\w*\s*(?::[^=]*)?=\s*(?:Field\()?\s*{NUM}50(?:\.0)?{END}",
        ),
        (
            '    nic_Gbps: float = Field(400.0, gt=0, le=MAX_RATE, description="per NIC")',
            '    bandwidth_GBps: float = Field(50.0, gt=0, description="per directed link")',
        ),
        (
            '    bandwidth_GBps: float = Field(gbit_to_gbyte(NIC_Gbps), description="one 400G IB NIC")',
            '    nvlink_nominal_GBps: float = Field(400.0, gt=0, description="datasheet aggregate")',
        ),
    ),
    Rule(
        "DeepSeek-V3's model fields (ModelSpec)",
        "sim/model/spec.py",  # ModelSpec, DEEPSEEK_V3
        (
            rf"\b(?:hidden|dim)\b.*=\s*(?:Field\()?{NUM}7168{ALONE}",
            rf"(?i)\w*experts\b.*=\s*(?:Field\()?{NUM}256{ALONE}",
            rf"(?i)\btopk\b.*=\s*{NUM}8{ALONE}",
            rf"(?i)\bnode_limit\b.*=\s*{NUM}4{ALONE}",
        ),
        (
            "    experts: int = 256",
            "    topk: int = 8",
            "    node_limit: int = 4",
            "    hidden: int = 7168",
            '    hidden: Annotated[int, typer.Option("--hidden", parser=Int(1, MAX_HIDDEN))] = 7168,',
        ),
        (
            "    experts: int = DEEPSEEK_V3.n_routed_experts",
            "    topk = 2",
            '    k: Annotated[int, typer.Option("--k", parser=Dim)] = 7168,',
        ),
    ),
    Rule(
        "fabric prices (ISCA'25 Table 3 fit: switch, switch link, endpoint link)",
        "sim/economics.py",  # SWITCH_USD, SWITCH_LINK_USD, ENDPOINT_LINK_USD
        (rf"{NUM}(?:10_?760|2_?730|1_?170)(?:\.0+)?{END}",),
        (
            "    switch_usd: float = Field(10_760.0, ge=0, le=MAX_USD)",
            "    endpoint_link_usd: float = 1170",
            "cost = switches * 10760 + links * 2_730.0",
        ),
        ("x = 107600", "y = 1.170", "z = 21170"),
    ),
    Rule(
        "DeepSeek-V3's layout and batch (sim/layout_defaults.py; tokens: ModelSpec.seq_len)",
        "sim/layout_defaults.py",  # DEFAULT_GPUS, DEFAULT_PP, DEFAULT_EP, DEFAULT_GLOBAL_BATCH
        (
            rf"{NUM}15360{END}",
            rf"(?i)\bgpus\b.*=\s*(?:Field\()?{NUM}2048{ALONE}",
            rf"(?i)\bep\b.*=\s*(?:Field\()?{NUM}64{ALONE}",
            rf"(?i)\bpp\b\s*=\s*{NUM}16{ALONE}",
            rf"(?i)\btokens\b.*=\s*(?:Field\()?{NUM}4096{ALONE}",
        ),
        (
            "    gpus: int = Field(2048, ge=1)",
            "    ep: int = 64",
            '    ep: Annotated[int, typer.Option("--ep", parser=Int(1, MAX_GPUS))] = 64,',
            "    pp = 16",
            "    tokens: int = 4096  # per micro-batch per GPU",
            '    ap.add_argument("--tokens", type=int, default=4096)',
            '        f"Twin: one steady-state step of 15360 x 4096 tokens takes"',
        ),
        ("    tokens = 4096 * 4", "    pp = 160", "EXPS = 4096"),
        other_sources={
            "sim/experiments/deepep_table.py": "4096 tokens per GPU: DeepEP's README test setting, not the model's",
        },
    ),
)


@cache
def code_lines(path: Path) -> dict[int, str]:
    """Each line of ``path`` as code: comments cut, docstrings and other lone string statements blanked."""
    text = path.read_text()
    lines = dict(enumerate(text.splitlines(), start=1))
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            for n in range(node.lineno, (node.end_lineno or node.lineno) + 1):
                lines[n] = ""
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.COMMENT:
            row, col = tok.start
            lines[row] = lines[row][:col]
    return lines


def python_files() -> list[Path]:
    return sorted(p for top in SCANNED for p in (ROOT / top).rglob("*.py") if ".venv" not in p.parts)


def hits(rule: Rule) -> list[str]:
    regexes = [re.compile(p, re.S) for p in rule.patterns]
    found = []
    for path in python_files():
        rel = path.relative_to(ROOT).as_posix()
        if rel == rule.home or rel in rule.pending or rel in rule.other_sources:
            continue
        lines = code_lines(path)
        for n, line in lines.items():
            if any(r.search(with_declaration(lines, n)) for r in regexes):
                found.append(f"{rel}:{n}: {line.strip()}")
    return found


def with_declaration(lines: dict[int, str], n: int) -> str:
    """Line ``n``; when it closes a bracket (``] = 20,``: a parameter's default after its annotation),
    joined with the lines back to where that parameter starts (the first line indented no deeper)."""
    line = lines[n]
    if not re.match(r"\s*\]\s*=", line):
        return line
    indent = len(line) - len(line.lstrip())
    start = n - 1
    while start > 1 and (not lines[start].strip() or len(lines[start]) - len(lines[start].lstrip()) > indent):
        start -= 1
    return "\n".join(lines[i] for i in range(start, n + 1))


@pytest.mark.parametrize("rule", RULES, ids=[r.name for r in RULES])
def test_literal_lives_only_in_its_home(rule: Rule) -> None:
    found = hits(rule)
    assert not found, f"{rule.name}: take it from {rule.home}, not a copy:\n" + "\n".join(found)


@pytest.mark.parametrize("rule", RULES, ids=[r.name for r in RULES])
def test_rule_is_precise(rule: Rule) -> None:
    """Each pattern finds the copies review found, and not the similar code around them."""
    regexes = [re.compile(p, re.S) for p in rule.patterns]
    for example in rule.examples:
        assert any(r.search(example) for r in regexes), f"{rule.name}: misses {example!r}"
    for other in rule.not_copies:
        assert not any(r.search(other) for r in regexes), f"{rule.name}: flags {other!r}"


def test_homes_exist() -> None:
    for rule in RULES:
        assert (ROOT / rule.home).is_file(), rule.home


def test_comments_and_docstrings_are_not_code(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text('"""H800: 132 SMs."""\n\nx = 1  # 132 SMs\ny = "132"\n')
    lines = code_lines(f)
    assert lines[1] == "" and "132" not in lines[3] and "132" in lines[4]
