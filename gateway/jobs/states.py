"""MetaStudio's raw training-job states and the console groups a user is shown.

From LIST_TRAINING_JOBS.md: "training" covers many internal states only administrators act on.
"""

from __future__ import annotations

STATE_GROUPS: dict[str, tuple[str, ...]] = {
    "waiting_upload": ("WAIT_FILE_UPLOAD",),
    "verifying": ("AUTO_VERIFYING", "MANUAL_VERIFYING"),
    "verify_failed": ("AUTO_VERIFY_FAILED", "MANUAL_VERIFY_FAILED"),
    "training": (
        "MANUAL_VERIFY_SUCCESS",
        "WAIT_TRAINING_DATA_PREPROCESS",
        "TRAINING_DATA_PREPROCESSING",
        "TRAINING_DATA_PREPROCESS_FAILED",
        "TRAINING_DATA_PREPROCESS_SUCCESS",
        "TRAINING",
        "TRAIN_FAILED",
        "TRAIN_SUCCESS",
        "INFERENCE_DATA_PREPROCESSING",
        "INFERENCE_DATA_PREPROCESS_FAILED",
        "WAIT_MAIN_FILE_UPLOAD",
        "MANUAL_STOP_INFERENCE_DATA_PREPROCESS",
        "MANUAL_STOP_TRAIN",
        "MANUAL_STOP_TRAINING_DATA_PREPROCESS",
        "WAIT_ADMIN_CONFIRM",
        "WAIT_COMPILE",
        "COMPILING",
        "COMPILE_FAILED",
        "WAIT_GENERATE_ACTION",
        "WAIT_ARRANGE",
        "ACTION_GENERATE_DATA_PROCESSING",
        "MANUAL_STOP_ACTION_GENERATE_DATA_PROCESSING",
        "MANUAL_STOP_ACTION_GENERATE_ORI_PROCESSING",
        "ACTION_GENERATE_ORI_PROCESSING",
        "ACTION_GENERATE_DATA_FAILED",
        "ACTION_GENERATE_ORI_FAILED",
        "ACTION_GENERATE_ORI_SUCCESS",
        "GENERATE_ACTION_PREPROCESS_FAILED",
        "WAIT_ADMIN_CALIBRATION",
        "WAIT_ASSET_SYNC",
    ),
    "waiting_user_confirm": ("WAIT_USER_CONFIRM",),
    "rejected": ("JOB_REJECT",),
    "completed": ("JOB_SUCCESS", "JOB_FINISH"),
    "suspended": ("JOB_PENDING",),
}

UNKNOWN_GROUP = "unknown"
ALL_STATES: frozenset[str] = frozenset(state for states in STATE_GROUPS.values() for state in states)
_GROUP_OF: dict[str, str] = {state: group for group, states in STATE_GROUPS.items() for state in states}


def state_group(state: object) -> str:
    """The console group of a raw state; ``unknown`` for states the documentation does not list."""
    return _GROUP_OF.get(state, UNKNOWN_GROUP) if isinstance(state, str) else UNKNOWN_GROUP
