def run(items: list[str], separator: str = ", ") -> str:
    return separator.join(items)
