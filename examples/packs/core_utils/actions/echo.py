import sys


def run(message: str) -> dict:
    print(message)
    return {"message": message}


if __name__ == "__main__":
    print(run(" ".join(sys.argv[1:])))
