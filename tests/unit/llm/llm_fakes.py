"""Helpers of the LLM client tests: a tiny scripted OpenAI-compatible HTTP server.

It listens on 127.0.0.1 (port 0).
The real ``openai`` package talks to it over HTTP: nothing of ``openai`` is mocked.
"""

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAKE_KEY = 'sk-test-SECRET123'


@dataclass
class FakeReply:
    """What the fake server answers to one request."""

    status: int = 200
    body: object = None
    headers: dict = field(default_factory=dict)
    delay: float = 0.0


def chat_body(content, prompt_tokens=11, completion_tokens=7, finish_reason='stop', refusal=None):
    """Return the JSON body of a chat completion whose message is ``content``."""
    message = {'role': 'assistant', 'content': content}
    if refusal is not None:
        message['refusal'] = refusal

    return {
        'id': 'chatcmpl-fake',
        'object': 'chat.completion',
        'created': 0,
        'model': 'fake-model',
        'choices': [{'index': 0, 'message': message, 'finish_reason': finish_reason}],
        'usage': {
            'prompt_tokens': prompt_tokens,
            'completion_tokens': completion_tokens,
            'total_tokens': prompt_tokens + completion_tokens,
        },
    }


def ok(content, **kwargs):
    """A 200 reply with a chat completion."""
    return FakeReply(200, chat_body(content, **kwargs))


def error(status, message, headers=None):
    """An error reply shaped like OpenAI's."""
    return FakeReply(status, {'error': {'message': message, 'type': 'fake'}}, headers or {})


class FakeOpenAIServer:
    """Answers POST /v1/chat/completions from a script (a list, or a callable per request)."""

    def __init__(self):
        self.requests = []
        self.replies = []
        self.responder = None
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server naming
                length = int(self.headers.get('Content-Length', 0))
                body = json.loads(self.rfile.read(length) or b'{}')
                headers = {name.lower(): value for name, value in self.headers.items()}
                with server._lock:
                    server.requests.append({'path': self.path, 'headers': headers, 'json': body})
                    if server.responder is not None:
                        reply = server.responder(body, headers)
                    elif server.replies:
                        reply = server.replies.pop(0)
                    else:
                        reply = error(418, 'the fake server ran out of scripted replies')

                if reply.delay:
                    time.sleep(reply.delay)

                payload = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
                data = payload.encode('utf-8')
                try:
                    self.send_response(reply.status)
                    self.send_header('Content-Type', 'application/json')
                    self.send_header('Content-Length', str(len(data)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)

                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={'poll_interval': 0.02}, daemon=True)

    @property
    def url(self):
        return f'http://127.0.0.1:{self.httpd.server_address[1]}/v1'

    def push(self, *replies):
        self.replies.extend(replies)

    def response_formats(self):
        return [(request['json'].get('response_format') or {}).get('type', 'text')
                for request in self.requests]

    def start(self):
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class RecordingSleep:
    """A sleep function that records the delays instead of waiting."""

    def __init__(self):
        self.delays = []

    def __call__(self, seconds):
        self.delays.append(seconds)
