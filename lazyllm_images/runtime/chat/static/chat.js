// The chat page: keeps the conversation, streams replies from POST /api/chat (Server-Sent Events).
"use strict";

const $ = (id) => document.getElementById(id);
const ui = {
  messages: $("messages"), input: $("input"), send: $("send"), stop: $("stop"), clear: $("clear"),
  model: $("model"), title: $("title"), banner: $("banner"), form: $("composer"),
};
const state = { history: [], controller: null };

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function nearBottom() {
  const m = ui.messages;
  return m.scrollHeight - m.scrollTop - m.clientHeight < 80;
}

function scrollDown(force) {
  if (force || nearBottom()) ui.messages.scrollTop = ui.messages.scrollHeight;
}

function addMessage(role, text) {
  const empty = $("empty");
  if (empty) empty.remove();
  const box = el("div", "msg " + role);
  const content = el("div", "content", text || "");
  box.appendChild(content);
  ui.messages.appendChild(box);
  scrollDown(true);
  return { box, content };
}

function showError(target, message) {
  target.appendChild(el("div", "error", message));
  scrollDown(true);
}

function showSources(box, sources) {
  const old = box.querySelector(".sources");
  if (old) old.remove();
  if (!sources.length) return;
  const wrap = el("section", "sources");
  wrap.appendChild(el("h2", null, "Sources"));
  const list = el("ol");
  for (const s of sources) {
    const item = el("li");
    item.appendChild(el("span", "path", s.path || "(unnamed)"));
    if (typeof s.score === "number") item.appendChild(el("span", "score", "score " + s.score.toFixed(3)));
    if (s.text) item.appendChild(el("blockquote", null, s.text));
    list.appendChild(item);
  }
  wrap.appendChild(list);
  box.appendChild(wrap);
}

function appendReasoning(reply, text) {
  if (!reply.reasoning) {
    const details = el("details", "reasoning");
    details.appendChild(el("summary", null, "Reasoning"));
    reply.reasoning = el("div");
    details.appendChild(reply.reasoning);
    reply.box.insertBefore(details, reply.content);
  }
  reply.reasoning.textContent += text;
}

function setBusy(busy) {
  ui.send.disabled = busy;
  ui.stop.hidden = !busy;
  ui.send.hidden = busy;
  ui.messages.setAttribute("aria-busy", busy ? "true" : "false");
}

// Text reaches the page once per animation frame, however many deltas arrived: a fast model must not make
// the browser lay out the page for every token.
function queueText(reply, text) {
  reply.text += text;
  reply.pending += text;
  if (!reply.frame) reply.frame = requestAnimationFrame(() => flushText(reply));
}

function flushText(reply) {
  if (reply.frame) cancelAnimationFrame(reply.frame);
  reply.frame = 0;
  if (!reply.pending) return;
  const stick = nearBottom();
  reply.box.classList.remove("pending");
  reply.textNode.appendData(reply.pending); // one text node, appended in place
  reply.pending = "";
  if (stick) scrollDown(true);
}

// One SSE event from the server; returns true when the reply is over.
function handleEvent(reply, ev) {
  switch (ev.type) {
    case "delta": queueText(reply, ev.content); return false;
    case "reasoning": appendReasoning(reply, ev.content); return false;
    case "sources": showSources(reply.box, ev.sources || []); return false;
    case "usage": reply.usage = ev.usage; return false;
    case "error": flushText(reply); reply.failed = true; showError(reply.box, ev.message); return false;
    case "done": reply.finish = ev.finish_reason; return true;
    default: return false;
  }
}

async function readEvents(response, reply) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart());
      if (data.length && handleEvent(reply, JSON.parse(data.join("\n")))) return;
    }
  }
}

async function errorText(response) {
  const raw = await response.text();
  try {
    const body = JSON.parse(raw);
    if (body && body.error && body.error.message) return body.error.message;
  } catch (_) { /* not JSON */ }
  return `the chat server answered HTTP ${response.status}: ${raw.slice(0, 500) || response.statusText}`;
}

function finishReply(reply, userTurn, outcome) {
  flushText(reply);
  reply.box.classList.remove("streaming", "pending");
  const notes = [];
  if (outcome === "stopped") notes.push("stopped");
  if (reply.finish === "length") notes.push("cut at the length limit");
  if (reply.usage && reply.usage.completion_tokens) notes.push(reply.usage.completion_tokens + " tokens");
  if (notes.length) reply.box.appendChild(el("div", "meta", notes.join(" · ")));
  if (reply.failed && !reply.text) {
    // Nothing came back: leave the exchange out of the history, so a resend is not doubled.
    const i = state.history.indexOf(userTurn);
    if (i >= 0) state.history.splice(i, 1);
    reply.box.appendChild(el("div", "meta", "not kept in the conversation"));
  } else {
    state.history.push({ role: "assistant", content: reply.text });
  }
}

async function send(text) {
  const userTurn = { role: "user", content: text };
  state.history.push(userTurn);
  addMessage("user", text);
  const { box, content } = addMessage("assistant", "");
  box.classList.add("pending", "streaming");
  const textNode = content.appendChild(document.createTextNode(""));
  const reply = {
    box, content, textNode, text: "", pending: "", frame: 0, failed: false, finish: null, usage: null, reasoning: null,
  };
  const controller = new AbortController();
  state.controller = controller;
  setBusy(true);
  let outcome = "done";
  try {
    const response = await fetch("api/chat", {
      method: "POST", headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
      body: JSON.stringify({ messages: state.history }), signal: controller.signal,
    });
    if (!response.ok) {
      reply.failed = true;
      showError(box, await errorText(response));
    } else {
      await readEvents(response, reply);
    }
  } catch (err) {
    if (err.name === "AbortError") {
      outcome = "stopped";
    } else {
      reply.failed = true;
      showError(box, "network error: the chat server could not be reached (" + err.message + ")");
    }
  } finally {
    if (state.controller === controller) {
      state.controller = null;
      setBusy(false);
    }
    if (box.isConnected) finishReply(reply, userTurn, outcome);
  }
}

function submit() {
  const text = ui.input.value.trim();
  if (!text || state.controller) return;
  ui.input.value = "";
  autosize();
  send(text);
}

function autosize() {
  ui.input.style.height = "auto";
  ui.input.style.height = Math.min(ui.input.scrollHeight, 192) + "px";
  ui.input.style.overflowY = ui.input.scrollHeight > 192 ? "auto" : "hidden";
}

function clearConversation() {
  if (state.controller) state.controller.abort();
  state.history = [];
  ui.messages.replaceChildren(el("p", "hint", "New conversation."));
  ui.messages.lastChild.id = "empty";
  ui.input.focus();
}

async function loadInfo() {
  try {
    const response = await fetch("api/info");
    if (response.status === 401) { window.location.assign("login"); return; }   // signed out: the login form
    if (!response.ok) throw new Error("HTTP " + response.status);
    const info = await response.json();
    ui.model.textContent = info.model;
    ui.model.title = "model: " + info.model;
    if (info.title) { ui.title.textContent = info.title; document.title = info.title; }
  } catch (err) {
    ui.banner.textContent = "Cannot load the page's settings: " + err.message;
    ui.banner.hidden = false;
  }
}

ui.form.addEventListener("submit", (e) => { e.preventDefault(); submit(); });
ui.input.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
    e.preventDefault();
    submit();
  }
});
ui.input.addEventListener("input", autosize);
ui.stop.addEventListener("click", () => { if (state.controller) state.controller.abort(); });
ui.clear.addEventListener("click", clearConversation);
loadInfo();
autosize();
ui.input.focus();
