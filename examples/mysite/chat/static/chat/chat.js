// The chat page: one WebSocket to /ws/chat/<room>/, JSON text frames both ways.
// Reconnects after a close (a server restart closes with 1012), waiting longer each time.
document.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("chat");
  if (!root) {
    return;
  }
  const log = document.getElementById("chat-log");
  const status = document.getElementById("chat-status");
  const form = document.getElementById("chat-form");
  const nameInput = document.getElementById("chat-name");
  const messageInput = document.getElementById("chat-message");
  const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
  const url = scheme + window.location.host + root.dataset.wsPath;
  let socket = null;
  let retryDelay = 1000;

  function append(className, parts) {
    const item = document.createElement("li");
    item.className = className;
    for (const [tag, text] of parts) {
      const el = document.createElement(tag);
      el.textContent = text; // never innerHTML: messages come from other users
      item.appendChild(el);
    }
    log.appendChild(item);
    item.scrollIntoView({ block: "nearest" });
  }

  function connect() {
    socket = new WebSocket(url);
    socket.addEventListener("open", () => {
      status.textContent = "connected";
      retryDelay = 1000;
    });
    socket.addEventListener("message", (event) => {
      const data = JSON.parse(event.data);
      if (data.type === "message") {
        const at = new Date(data.at).toLocaleTimeString();
        append("chat-message", [
          ["time", at],
          ["strong", data.user],
          ["span", data.message],
        ]);
      } else if (data.type === "error") {
        append("chat-error error", [["span", data.error]]);
      }
    });
    socket.addEventListener("close", (event) => {
      status.textContent = `disconnected (${event.code}); retrying in ${retryDelay / 1000} s`;
      setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 30000);
    });
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!socket || socket.readyState !== WebSocket.OPEN || !messageInput.value.trim()) {
      return;
    }
    const payload = { message: messageInput.value };
    if (nameInput && nameInput.value.trim()) {
      payload.name = nameInput.value.trim();
    }
    socket.send(JSON.stringify(payload));
    messageInput.value = "";
    messageInput.focus();
  });

  connect();
});
