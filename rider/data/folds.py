"""The SDK's standard train/valid/test folds (video ids), shipped inside `mmsdk` itself."""

from __future__ import annotations

SPLITS = ("train", "valid", "test")


def standard_folds(dataset: str) -> dict[str, list[str]]:
    """Video ids per split for ``mosi`` or ``mosei``."""
    if dataset == "mosi":
        from mmsdk.mmdatasdk.dataset.standard_datasets.CMU_MOSI import cmu_mosi_std_folds as folds
    elif dataset == "mosei":
        from mmsdk.mmdatasdk.dataset.standard_datasets.CMU_MOSEI import cmu_mosei_std_folds as folds
    else:
        raise ValueError(f"no standard folds for dataset '{dataset}' (expected mosi or mosei)")
    return {
        "train": list(folds.standard_train_fold),
        "valid": list(folds.standard_valid_fold),
        "test": list(folds.standard_test_fold),
    }


def split_of(video_ids: dict[str, list[str]]) -> dict[str, str]:
    """Invert ``{split: [video]}`` into ``{video: split}``; a video in two splits is an error."""
    owner: dict[str, str] = {}
    for split, videos in video_ids.items():
        for video in videos:
            if video in owner:
                raise ValueError(f"video '{video}' is in both the {owner[video]} and the {split} fold")
            owner[video] = split
    return owner
