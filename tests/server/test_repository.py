"""The repository answers every call with one slot: the model, or the reason it cannot serve."""

import pytest

from server.config.model_config import ModelTask
from server.runtime.errors import ModelNotFoundError, ModelNotReadyError
from server.runtime.repository import UNKNOWN_MODEL_LABEL, ModelRepository


def test_a_call_naming_no_model_gets_the_task_default():
    repository = ModelRepository({"fraud": ModelTask.FRAUD, "credit": ModelTask.CREDIT})
    assert repository.slot("", ModelTask.FRAUD).name == "fraud"
    assert repository.slot("", ModelTask.CREDIT).name == "credit"


def test_the_only_model_of_a_task_is_its_default():
    repository = ModelRepository({"cards-eu": ModelTask.FRAUD})
    assert repository.slot("", ModelTask.FRAUD).label == "cards-eu"


def test_several_models_of_a_task_and_none_named_is_refused():
    repository = ModelRepository({"a": ModelTask.FRAUD, "b": ModelTask.FRAUD})
    slot = repository.slot("", ModelTask.FRAUD)
    assert slot.label == UNKNOWN_MODEL_LABEL
    with pytest.raises(ModelNotFoundError, match=r"several fraud models are served \(a, b\): name one"):
        slot.ready()


def test_unknown_names_share_one_metrics_label():
    repository = ModelRepository({"fraud": ModelTask.FRAUD})
    slot = repository.slot("no-such-model", ModelTask.FRAUD)
    assert slot.label == UNKNOWN_MODEL_LABEL
    with pytest.raises(ModelNotFoundError, match=r"'no-such-model' is not served \(served: fraud\)"):
        slot.ready()


def test_a_model_of_another_task_is_not_found():
    repository = ModelRepository({"credit": ModelTask.CREDIT})
    slot = repository.slot("credit", ModelTask.FRAUD)
    assert slot.label == "credit"
    with pytest.raises(ModelNotFoundError, match="is a credit model, not fraud"):
        slot.ready()


def test_a_configured_model_is_not_ready_until_loaded():
    repository = ModelRepository({"fraud": ModelTask.FRAUD})
    with pytest.raises(ModelNotReadyError, match="still loading"):
        repository.slot("fraud", ModelTask.FRAUD).ready()
    assert not repository.is_ready("fraud")


@pytest.mark.parametrize(
    "expected",
    [
        {"fraud": ModelTask.FRAUD, "credit": ModelTask.CREDIT},
        {"a": ModelTask.FRAUD, "b": ModelTask.FRAUD, "broken": None},
        {"cards-eu": ModelTask.FRAUD, "loans": ModelTask.CREDIT, "scores": ModelTask.BINARY},
    ],
)
def test_the_routes_read_on_the_scoring_path_agree_with_slot(expected):
    """`routes[task]` (a plain dict, read per call) names exactly the slots `slot()` would return; every
    other request falls through to `slot()`, which says why it is refused."""
    repository = ModelRepository(expected)
    for task in [None, *ModelTask]:
        routes = repository.routes[task]
        for requested in ["", *expected, "no-such-model"]:
            slot = repository.slot(requested, task)
            try:
                slot.ready()
            except ModelNotReadyError:  # a configured model, not loaded yet: routed
                served_by_slot = True
            except ModelNotFoundError:  # refused, naming why
                served_by_slot = False
            assert (routes.get(requested) is slot) == served_by_slot, (task, requested)
            if requested not in routes:
                assert not served_by_slot
