"""Input formats. Each source module exposes ``iter_frames(path, opts, input_index)`` yielding
``(frame_number_in_source, Frame | reason_it_is_invalid)`` and ``count(path)`` (frames, or None if unknown)."""
