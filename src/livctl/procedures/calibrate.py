"""A calibration as `livctl calibrate` runs it: the sweep (`livctl.records.calibration.Calibrator`)
with its raw signal kept beside the calibration file, sealed and named after the calibration when
it succeeded, discarded (with nothing written) when it did not."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from livctl.platforms import Platform
    from livctl.records.archive import RawArchive
    from livctl.records.calibration import Calibration, SweepSettings


def sweep_archive(platform: "Platform", target: Path, settings: "SweepSettings", *, operator: str | None,
                  load_kg: float | None, sensor: str | None) -> "RawArchive":
    """The sweep's raw signal, beside the calibration file `target` (<platform-id>.toml.archive/),
    under a name of its own until the calibration has its id."""
    from livctl.clock import utc_now
    from livctl.records.archive import RawArchive, prepare_dir

    folder = prepare_dir(target)
    metadata: dict[str, Any] = {f"sweep_{k}": v for k, v in dataclasses.asdict(settings).items()
                                if isinstance(v, (int, float, str))}
    metadata.update(operator=operator, load_kg=load_kg, sensor=sensor)
    return RawArchive.for_platform(folder / f"{platform.platform_id}-sweep-{utc_now():%Y%m%dT%H%M%S%fZ}.h5", platform,
                                   kind="calibration", metadata=metadata)


def discard_sweep(archive: "RawArchive") -> None:
    """A calibration that wrote nothing keeps no raw signal either (nor an empty folder for it)."""
    archive.discard()
    try:
        archive.path.parent.rmdir()
    except OSError:
        pass  # other calibrations' signals are there


def keep_sweep(cal: "Calibration", archive: "RawArchive", target: Path) -> tuple["Calibration", tuple[str, ...]]:
    """The calibration with its sweep's raw signal sealed and named after it, and the warnings a
    person should read (a signal that could not be kept, or only in part)."""
    seal = archive.close(target.parent, status="completed", rename_to=f"{cal.calibration_id}.h5",
                         calibration_id=cal.calibration_id, id=cal.calibration_id)
    if seal is None:
        return cal, (f"the sweep's raw signal could not be kept: {archive.failure}",)
    warnings = () if seal.complete else (f"the sweep's raw signal is incomplete: {seal.note}",)
    return dataclasses.replace(cal, raw_signal={"file": seal.file, "sha256": seal.sha256, "samples": seal.samples,
                                                "complete": seal.complete}), warnings
