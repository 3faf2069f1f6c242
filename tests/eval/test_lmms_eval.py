"""lmms-eval integration, without lmms-eval: the task YAML parses, utils follow the harness's
function signatures, the exported task folder is complete, and the model wrapper generates."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from fourdthinker.eval.lmms_eval import utils
from fourdthinker.eval.lmms_eval.export import TEMPLATE, export_task
from fourdthinker.eval.lmms_eval.model import FourDThinkerLMM
from fourdthinker.eval.loaders import load_benchmark


class _Loader(yaml.SafeLoader):
    """Reads lmms-eval YAML: ``!function utils.x`` -> the function from our utils module."""


_Loader.add_constructor("!function", lambda loader, node: getattr(utils, loader.construct_scalar(node).split(".", 1)[1]))


def test_task_yaml_and_utils(world_root, tmp_path):
    cfg = yaml.load(TEMPLATE.read_text(), Loader=_Loader)
    assert cfg["output_type"] == "generate_until" and cfg["doc_to_target"] == "answer"
    assert cfg["generation_kwargs"]["do_sample"] is False
    lr = load_benchmark("synthetic", world_root)
    folder = export_task(lr, tmp_path)
    task_cfg = yaml.load((folder / "fourdthinker_synthetic.yaml").read_text(), Loader=_Loader)
    docs_path = task_cfg["dataset_kwargs"]["data_files"]["test"]
    docs = [json.loads(x) for x in Path(docs_path).read_text().splitlines()]
    assert len(docs) == len(lr.items) and (folder / "utils.py").is_file()
    doc = docs[0]
    assert task_cfg["doc_to_visual"](doc) == [doc["video_path"]] and (world_root / lr.items[0].video).samefile(doc["video_path"])
    text = task_cfg["doc_to_text"](doc, {"pre_prompt": "", "post_prompt": ""})
    assert doc["question"] in text and "A. " in text and "<answer>" in text
    # process + aggregate: subtask x right, subtask y 1 of 2 -> Avg = (100 + 50) / 2
    rows = [utils.fourdthinker_process_results({**doc, "subtask": s, "answer": "B"}, [f"<answer>{a}</answer>"])["fourdthinker_avg"]
            for s, a in (("x", "B"), ("y", "B"), ("y", "C"))]
    assert [r["correct"] for r in rows] == [True, True, False]
    assert task_cfg["metric_list"][0]["aggregation"](rows) == pytest.approx(75.0)


def test_model_wrapper_generates_on_requests(world_root):
    import torch

    torch.set_num_threads(2)
    lr = load_benchmark("synthetic", world_root)
    docs = [{"video_path": str(lr.root / it.video)} for it in lr.items[:2]]
    m = FourDThinkerLMM(pretrained="qwen2.5-vl-tiny", max_frames=2)
    m.task_dict = {"t": {"test": docs}}
    reqs = [SimpleNamespace(args=(f"question {i}", {"max_new_tokens": 6}, utils.fourdthinker_doc_to_visual, i, "t", "test"))
            for i in range(2)]
    out = m.generate_until(reqs)
    assert len(out) == 2 and all(isinstance(o, str) for o in out)
    with pytest.raises(NotImplementedError, match="log-likelihood"):
        m.loglikelihood(reqs)
