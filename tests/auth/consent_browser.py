"""A stand-in for a user's browser, for tools that open one (mcp-remote runs $BROWSER with the
authorization URL): it follows Bastion to the consent page, signs in as BASTION_TEST_EMAIL with
BASTION_TEST_PASSWORD, allows, and delivers the redirect to the tool's callback."""

from __future__ import annotations

import os
import re
import sys

import httpx2


def main(authorize_url: str) -> int:
    with httpx2.Client(timeout=30) as http:
        started = http.get(authorize_url)
        consent_url = started.headers["location"]
        page = http.get(consent_url)
        fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page.text))
        form = {**fields, "email": os.environ["BASTION_TEST_EMAIL"], "password": os.environ["BASTION_TEST_PASSWORD"]}
        answer = http.post(consent_url.split("?")[0], data={**form, "action": "allow"})
        with open(os.environ["BASTION_TEST_BROWSER_LOG"], "a") as log:
            log.write(f"{answer.status_code}\n")
        if answer.status_code != 303:
            print(f"consent refused: {answer.status_code}", file=sys.stderr)
            return 1
        http.get(answer.headers["location"])  # the tool's loopback callback receives code, state and iss
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
