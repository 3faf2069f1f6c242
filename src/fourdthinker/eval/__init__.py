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
``lmms_eval`` (task + model wrapper), ``answers`` (the shared answer parser).
"""

from fourdthinker.eval.evaluate import EvalResult, evaluate, load_result
from fourdthinker.eval.loaders import LoadResult, load_benchmark
from fourdthinker.eval.report import write_report
from fourdthinker.eval.runners import make_runner
from fourdthinker.eval.tables import bench_table, table3

__all__ = ["EvalResult", "LoadResult", "bench_table", "evaluate", "load_benchmark", "load_result", "make_runner",
           "table3", "write_report"]
