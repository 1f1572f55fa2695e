"""Evaluation (engine/evaluate.py): the top-5 tie rule, and loss, error and top-5 error by name."""

from __future__ import annotations

import pytest
import torch
from imagetree import CPU

from resnet_train.engine.evaluate import EvalResult, evaluate, topk_wrong


def test_top5_tie_rule_ranks_equal_scores_by_class_index():
    labels = torch.tensor([5, 0, 6, 2])
    scores = torch.tensor(
        [
            [
                0.0,
                1,
                1,
                1,
                1,
                1,
                1,
            ],  # true class 5 tied with 1..4 (lower indices win) -> rank 4: in the top 5
            [0.0, 1, 1, 1, 1, 1, 0],  # five classes strictly above class 0 -> rank 5: wrong
            [1.0, 1, 1, 1, 1, 0, 1],  # class 6 tied with 0..4, all lower -> rank 5: wrong
            [2.0, 2, 2, 9, 9, 9, 9],  # class 2: four above, 0 and 1 tie lower -> rank 6: wrong
        ]
    )
    assert topk_wrong(scores, labels, 5).tolist() == [False, True, True, True]
    assert topk_wrong(scores, labels, 7).tolist() == [False] * 4
    assert torch.equal(topk_wrong(scores, labels, 1), scores.argmax(dim=1) != labels)
    random_scores = torch.randint(0, 3, (200, 6)).float()  # many ties
    random_labels = torch.randint(0, 6, (200,))
    assert torch.equal(topk_wrong(random_scores, random_labels, 1), random_scores.argmax(1) != random_labels)
    assert topk_wrong(torch.tensor([[float("nan"), 0.0]]), torch.tensor([0]), 5).item()


def test_evaluate_reports_loss_error_and_top5_by_name():
    net = torch.nn.Linear(4, 7)
    batches = [(torch.randn(16, 4), torch.randint(0, 7, (16,))) for _ in range(2)]
    result = evaluate(net, batches, CPU)
    assert isinstance(result, EvalResult)
    assert result.loss > 0 and 0 <= result.top5_error <= result.error <= 1
    with pytest.raises(TypeError):
        loss, error = result  # three fields: read them by name, never two of them by position


def test_an_evaluation_set_without_one_readable_image_is_one_line():
    from resnet_train.errors import UserError

    with pytest.raises(UserError, match="no readable image"):
        evaluate(torch.nn.Linear(3, 2), [], CPU)
