"""Small Flask application used by bourbon's pytest suite.

Serve it with ``bourbon flaskapp:app --chdir tests/apps``.
"""

from pathlib import Path

from flask import (
    Flask,
    Response,
    abort,
    jsonify,
    request,
    send_file,
    stream_with_context,
)

app = Flask(__name__)

THIS_FILE = Path(__file__).resolve()


@app.get("/")
def index():
    return Response("Hello from Flask\n", mimetype="text/plain")


@app.get("/json")
def json_view():
    return jsonify(message="Hello from Flask", items=[1, 2, 3])


@app.post("/echo")
def echo():
    content_type = request.content_type or "application/octet-stream"
    return Response(request.get_data(), content_type=content_type)


@app.get("/file")
def file():
    return send_file(THIS_FILE, mimetype="text/x-python")


@app.get("/stream")
def stream():
    # stream_with_context keeps the request context alive while the WSGI
    # server iterates the body, so request.args is usable inside the generator.
    count = request.args.get("n", default=5, type=int)

    @stream_with_context
    def generate():
        for i in range(count):
            yield f"chunk {i} of {request.args.get('n', '5')}\n"

    return Response(generate(), mimetype="text/plain")


@app.get("/abort")
def aborted():
    abort(404)
