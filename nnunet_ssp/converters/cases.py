"""Case naming: a labeled frame of a subject's cine is the case `<subject>_frameYY`, YY = frame index + 1."""

CASE_MARKER = "_frame"


def case_id(subject: str, frame_index: int) -> str:
    """The case id of the 0-based `frame_index` of `subject`'s cine (ACDC's own 1-based frame numbering)."""
    return f"{subject}{CASE_MARKER}{frame_index + 1:02d}"


def subject_of_case(case: str) -> str:
    """The subject a case belongs to: everything before `_frame`."""
    subject, marker, _ = case.partition(CASE_MARKER)
    if not marker or not subject:
        raise ValueError(f"Case id {case!r} does not have the form <subject>{CASE_MARKER}YY.")
    return subject
