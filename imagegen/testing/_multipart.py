"""A small multipart/form-data reader for ``POST /v1/files`` (exact bytes, no decoding)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from imagegen.testing._http import bad_request


@dataclass
class Part:
    data: bytes
    filename: str | None
    content_type: str | None


_PARAM = re.compile(r';\s*(\w+)="?([^";]*)"?')


def parse_multipart(content_type: str, body: bytes) -> dict[str, Part]:
    """Parts of a multipart body by form field name."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not content_type.startswith("multipart/form-data") or not match:
        raise bad_request("Expected a multipart/form-data body")
    delimiter = b"--" + match.group(1).encode()
    parts: dict[str, Part] = {}
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        head, sep, data = chunk.partition(b"\r\n\r\n")
        if not sep:
            continue
        if data.endswith(b"\r\n"):
            data = data[:-2]
        headers = {}
        for line in head.decode("utf-8", "replace").strip().split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        params = dict(_PARAM.findall(headers.get("content-disposition", "")))
        if "name" in params:
            parts[params["name"]] = Part(data, params.get("filename"),
                                         headers.get("content-type"))
    return parts
