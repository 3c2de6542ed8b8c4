import datetime
import time


def poll(interval: int = 60):
    while True:
        yield {"at": datetime.datetime.now(datetime.UTC).isoformat()}
        time.sleep(interval)
