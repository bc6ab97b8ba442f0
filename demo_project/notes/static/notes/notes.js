/**
 * @file Page script of the notes demo: wires the "Summarise", "Detect
 * mood" and chat controls to the `@offloaded` views through
 * `runtime.run()`, streaming tokens into the page. When the runtime could
 * not start, it POSTs to the same views directly and the server's fallback
 * produces the output.
 * @module notes/notes
 */

const script = document.getElementById("notes-script");

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

async function postDirectly(url, data) {
  const response = await fetch(url, {
    method: "POST",
    body: new URLSearchParams(data),
    headers: { "X-CSRFToken": csrfToken() },
    credentials: "same-origin",
  });
  const body = await response.json();
  if (!response.ok) throw new Error(body.reason ?? body.error ?? `HTTP ${response.status}`);
  return body;
}

async function loadRuntime() {
  try {
    const { runtimeReady } = await import(script.dataset.offloadModule);
    return await runtimeReady;
  } catch (error) {
    console.warn("notes: runtime unavailable, using the server:", error?.message);
    return null;
  }
}

function describe(result) {
  if (result.fallback) return `Answered by the server (${result.fallback.reason}).`;
  return "Answered on this device.";
}

function bindButton(id, onClick) {
  const button = document.getElementById(id);
  if (button === null) return;
  button.addEventListener("click", async () => {
    const status = document.getElementById("notes-status");
    button.disabled = true;
    status.textContent = "Working…";
    try {
      status.textContent = describe(await onClick(button.dataset.url));
    } catch (error) {
      status.textContent = `Failed: ${error.message}`;
    } finally {
      button.disabled = false;
    }
  });
}

function call(runtime, url, data, onToken) {
  if (runtime?.run) return runtime.run(url, data, { onToken });
  return postDirectly(url, data);
}

function bindNote(runtime) {
  const summary = document.getElementById("notes-summary");
  bindButton("notes-summarise", async (url) => {
    summary.textContent = "";
    const result = await call(runtime, url, {}, (token) => {
      summary.textContent += token;
    });
    summary.textContent = result.output ?? "";
    return result;
  });
  bindButton("notes-detect-mood", async (url) => {
    const result = await call(runtime, url, {});
    document.getElementById("notes-mood").textContent = result.mood ?? "unclear";
    return result;
  });
}

function bindChat(runtime) {
  const form = document.getElementById("notes-chat-form");
  if (form === null) return;
  const log = document.getElementById("notes-chat-log");
  const url = document.getElementById("notes-chat").dataset.url;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = document.getElementById("notes-chat-input");
    const question = document.createElement("p");
    question.textContent = `You: ${input.value}`;
    const answer = document.createElement("p");
    log.append(question, answer);
    const data = { message: input.value };
    input.value = "";
    try {
      const result = await call(runtime, url, data, (token) => {
        answer.textContent += token;
      });
      answer.textContent = result.output ?? "";
    } catch (error) {
      answer.textContent = `Failed: ${error.message}`;
    }
  });
}

const runtime = await loadRuntime();
bindNote(runtime);
bindChat(runtime);
