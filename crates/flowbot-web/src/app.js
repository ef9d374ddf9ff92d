// The web chat's page: draws what /chat/api says and sends what the user does. It holds no
// conversation logic: buttons carry the engine's tokens, typed text goes to the engine as is.
"use strict";

const log = document.getElementById("log");
const form = document.getElementById("say");
const text = document.getElementById("text");
let busy = false;
// While the page shows a preview of the start (no conversation is stored yet): the entry it
// previews and the node its prompt is at. The first input opens the conversation there.
let preview = null;

// An id per request; a retry sends the same one, and the server applies it once.
function newId() {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function call(method, body, query) {
  const options = { method, headers: { "x-flowbot": "1" }, credentials: "same-origin" };
  if (body) {
    options.headers["content-type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  for (let attempt = 0; ; attempt++) {
    let response = null;
    try {
      response = await fetch("/chat/api" + (query || ""), options);
    } catch (err) {
      // A network error: retried (with the same id).
      if (attempt >= 3) throw err;
    }
    if (response) {
      if (response.ok) return await response.json();
      // A refused request would be refused again: only server errors are retried. A limit
      // says how long to wait.
      if (response.status === 429) {
        const wait = Number(response.headers.get("retry-after")) || 1;
        throw new Error("429: " + wait + " s");
      }
      if (response.status < 500 || attempt >= 3) throw new Error(String(response.status));
    }
    await new Promise((done) => setTimeout(done, 500 * 2 ** attempt));
  }
}

// A text's segments as nodes: plain text, and links only for the URLs and addresses the
// server found.
function textNodes(parent, segments) {
  for (const s of segments || []) {
    if (s.t === "url" && /^https?:\/\//.test(s.v)) {
      const a = document.createElement("a");
      a.href = s.v;
      a.rel = "noopener noreferrer";
      a.target = "_blank";
      a.textContent = s.v;
      parent.append(a);
    } else if (s.t === "email") {
      const a = document.createElement("a");
      a.href = "mailto:" + s.v;
      a.textContent = s.v;
      parent.append(a);
    } else {
      parent.append(document.createTextNode(s.v));
    }
  }
}

function bubble(kind) {
  const div = document.createElement("div");
  div.className = "bubble " + kind;
  log.append(div);
  return div;
}

// Buttons of earlier prompts go grey: the engine would refuse them as stale anyway.
function retire() {
  for (const b of log.querySelectorAll("button")) b.disabled = true;
}

// The questions answered so far (a reload): each with the answer chosen.
function drawHistory(past) {
  for (const h of past || []) {
    const div = bubble("asked");
    textNodes(div, h.text);
    if (h.note) {
      const note = document.createElement("div");
      note.className = "note";
      textNodes(note, h.note);
      div.append(note);
    }
    bubble("mine").textContent = h.answer;
  }
}

function lastPrompt(replies) {
  return (replies || []).filter((r) => r.kind === "prompt").pop();
}

function draw(replies) {
  if (!replies.length) return;
  retire();
  form.classList.remove("field");
  text.placeholder = "";
  for (const r of replies) {
    const div = bubble(r.kind);
    textNodes(div, r.text);
    if (r.kind !== "prompt") continue;
    if (r.note) {
      const note = document.createElement("div");
      note.className = "note";
      textNodes(note, r.note);
      div.append(note);
    }
    const box = document.createElement("div");
    box.className = "buttons";
    const nav = document.createElement("div");
    nav.className = "nav";
    for (const b of r.buttons) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = b.label;
      button.dataset.token = b.token;
      if (b.nav) button.className = "nav";
      button.addEventListener("click", () => send({ press: b.token }, b.label));
      (b.nav ? nav : box).append(button);
    }
    if (nav.childElementCount) box.append(nav);
    if (box.childElementCount) div.append(box);
    if (r.input) {
      form.classList.add("field");
      text.placeholder = r.input.label;
      text.focus();
    }
  }
  window.scrollTo(0, document.body.scrollHeight);
}

async function send(input, shown) {
  if (busy) return;
  busy = true;
  if (shown) bubble("mine").textContent = shown;
  try {
    if (preview) {
      // The first input: open the conversation where the preview stands, then apply it.
      const opened = await call("POST", { id: newId(), start: preview.entry });
      const at = preview.node;
      preview = null;
      history.replaceState(null, "", location.pathname);
      const now = lastPrompt(opened.replies);
      if (!now || now.node !== at) {
        // Not what the preview showed (the flow changed): show what is there instead.
        draw(opened.replies);
        return;
      }
    }
    const answer = await call("POST", Object.assign({ id: newId() }, input));
    draw(answer.replies);
  } catch (err) {
    bubble("notice").textContent = "⚠ " + err.message;
  } finally {
    busy = false;
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const value = text.value;
  // While an answer is on its way, the text stays in the box (send would drop it).
  if (busy || !value.trim()) return;
  text.value = "";
  send({ text: value }, value);
});

(async () => {
  const start = new URLSearchParams(location.search).get("start");
  const query = start ? "?start=" + encodeURIComponent(start) : "";
  const now = await call("GET", null, query);
  document.getElementById("title").textContent = now.title;
  document.title = now.title;
  // The desk's notices (a completed request), above the conversation; shown once.
  for (const n of now.notices || []) textNodes(bubble("notice desk"), n.text);
  if (now.preview) {
    // Nothing is stored until the first input; the address keeps ?start= until then, so a
    // reload previews the same entry.
    const at = lastPrompt(now.replies);
    preview = { entry: start || null, node: at ? at.node : null };
    draw(now.replies);
  } else if (start !== null) {
    // A help desk's link while a conversation exists: begin at its entry, once (a reload
    // continues instead).
    history.replaceState(null, "", location.pathname);
    await send({ start: start || null });
  } else {
    drawHistory(now.history);
    draw(now.replies);
  }
})();
