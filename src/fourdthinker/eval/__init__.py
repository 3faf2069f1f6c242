"""eval stage: benchmarks -> runners -> scoring -> tables and reports (docs/evaluation.md).

Python API (what ``fourdthinker eval`` and the demo use)::

    from fourdthinker.eval import load_benchmark, make_runner, evaluate, bench_table, table3, write_report
    lr = load_benchmark("synthetic", "data/world_test")          # or dsr-bench / dyn-bench / vlm4d
    res = evaluate(make_runner("DIFT=runs/dift"), lr, "reports/synthetic/DIFT")   # resumable
    print(res.avg(), res.ci())                                   # "Avg." and its 95% bootstrap CI
    table3({"base": r0, "DIFT": r1, "DIFT + 4DRL": r2}).to_markdown()

Modules: ``loaders`` (public benchmark formats), ``synthetic`` (held-out world benchmark),
``runners`` (random / API / local models), ``evaluate`` (resumable runs, ``EvalResult``),
``metrics`` (accuracy, Avg., bootstrap CI, McNemar), ``tables`` (paper layouts), ``report`` (HTML),
``lmms_eval`` (task + model wrapper). The answer parser is ``fourdthinker.qa`` (``answers`` re-exports it).
"""

from fourdthinker.lazy import lazy_exports

_EXPORTS = {  # loaded on first use (fourdthinker.lazy)
    "EvalResult": "fourdthinker.eval.evaluate",
    "evaluate": "fourdthinker.eval.evaluate",
    "load_result": "fourdthinker.eval.evaluate",
    "LoadResult": "fourdthinker.eval.loaders",
    "load_benchmark": "fourdthinker.eval.loaders",
    "write_report": "fourdthinker.eval.report",
    "make_runner": "fourdthinker.eval.runners",
    "bench_table": "fourdthinker.eval.tables",
    "table3": "fourdthinker.eval.tables",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
