def poll(urls: list[str]):
    for url in urls:
        yield {"url": url}
