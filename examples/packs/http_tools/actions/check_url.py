import urllib.request

import six  # provided by the pack's built environment


def run(url: str, expected_status: int = 200, timeout: float = 10) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - an example action
        return {"ok": response.status == expected_status, "status": response.status, "six": six.__version__}
