import json


def run(channel: str, message: str) -> str:
    return json.dumps({"channel": channel, "text": message})
