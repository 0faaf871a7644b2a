// The status page's live part: poll /ui/state.json every second and redraw with DOM calls
// (textContent only, never innerHTML, so no value from the store is ever parsed as markup).
"use strict";
const CSRF = document.querySelector('meta[name="csrf-token"]').content;
const history = new Map(); // TaskExecutionArn -> [[time, BytesTransferred], ...] (last 60)

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : String(Math.round(n))) + " " + units[i];
}

function duration(s) {
  if (!isFinite(s) || s < 0) return "–";
  s = Math.round(s);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return (h ? h + "h " : "") + (h || m ? m + "m " : "") + r + "s";
}

function speedOf(arn) {
  const points = history.get(arn) || [];
  if (points.length < 2) return NaN;
  const [t0, b0] = points[Math.max(0, points.length - 6)], [t1, b1] = points[points.length - 1];
  return t1 > t0 ? (b1 - b0) / (t1 - t0) : NaN;
}

function sparkline(arn) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", "0 0 120 24");
  const points = history.get(arn) || [];
  const speeds = [];
  for (let i = 1; i < points.length; i++) {
    const dt = points[i][0] - points[i - 1][0];
    speeds.push(dt > 0 ? (points[i][1] - points[i - 1][1]) / dt : 0);
  }
  const top = Math.max(1, ...speeds);
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", speeds.map((v, i) =>
    `${(i * 120 / Math.max(1, speeds.length - 1)).toFixed(1)},${(23 - 22 * v / top).toFixed(1)}`).join(" "));
  svg.append(line);
  return svg;
}

async function act(body) {
  const reply = await fetch("/ui/action", {
    method: "POST", credentials: "same-origin",
    headers: {"content-type": "application/json", "x-csrf-token": CSRF},
    body: JSON.stringify(body),
  });
  const message = document.getElementById("message");
  if (reply.ok) { message.hidden = true; } else {
    const data = await reply.json().catch(() => ({}));
    message.textContent = data.message || ("action failed: HTTP " + reply.status);
    message.hidden = false;
  }
  poll();
}

function table(headers, rows) {
  if (!rows.length) return el("p", {class: "muted"}, "none");
  return el("table", {}, el("thead", {}, el("tr", {}, ...headers.map(h => el("th", {}, h)))),
    el("tbody", {}, ...rows));
}

function shortArn(arn) { return arn.split("/").slice(-1)[0]; }

// Running rows are updated in place (not rebuilt) so an operator typing a new rate keeps the
// input, its focus and its value across polls, and an opened item list stays open.
const RUNNING_HEADERS = ["execution", "phase", "files", "bytes", "speed", "throughput", "ETA",
  "work items", "actions"];
const runningRows = new Map(); // TaskExecutionArn -> {row, itemsRow, items: Map(index -> <tr>)}
const ENDED = new Set(["CANCELED", "FAILED", "SUCCEEDED", "NOT_COMPATIBLE"]);
const isSuspended = i => i.Status === "SUSPENDED" || i.Target === "SUSPENDED";
// what Suspend can still act on: an item not ended and not already suspended (not the planner)
const isSuspendable = i => i.Kind !== "PREPARE" && !ENDED.has(i.Status) && !isSuspended(i);

function newRunningRow(e) {
  const arn = e.TaskExecutionArn;
  const rate = el("input", {class: "rate", type: "number", value: String(e.BytesPerSecond),
    "data-role": "rate-input", title: "BytesPerSecond (-1: unlimited)"});
  const setRate = el("button", {"data-role": "set-rate"}, "Set rate");
  setRate.onclick = () => act({action: "rate", TaskExecutionArn: arn,
    BytesPerSecond: Number(rate.value)});
  const cancel = el("button", {"data-role": "cancel"}, "Cancel");
  cancel.onclick = () => act({action: "cancel", TaskExecutionArn: arn});
  const suspend = el("button", {"data-role": "suspend"}, "Suspend");
  suspend.onclick = () => act({action: "suspend", TaskExecutionArn: arn});
  const resume = el("button", {"data-role": "resume"}, "Resume");
  resume.onclick = () => act({action: "resume", TaskExecutionArn: arn});
  const row = el("tr", {"data-arn": arn, class: "execution"},
    el("td", {}, shortArn(arn)), el("td", {"data-role": "status"}),
    el("td", {"data-role": "files"}), el("td", {"data-role": "bytes"}),
    el("td", {"data-role": "speed"}), el("td", {"data-role": "spark"}),
    el("td", {"data-role": "eta"}), el("td", {"data-role": "items-summary"}),
    el("td", {}, rate, setRate, cancel, suspend, resume));
  const list = el("div", {"data-role": "item-list"});
  const details = el("details", {"data-role": "items"},
    el("summary", {"data-role": "items-toggle"}, "work items"), list);
  const itemsRow = el("tr", {"data-items-of": arn, class: "items"},
    el("td", {colspan: String(RUNNING_HEADERS.length)}, details));
  return {row, itemsRow, items: new Map()};
}

function newItemRow(arn, item) {
  const suspend = el("button", {"data-role": "item-suspend"}, "Suspend");
  suspend.onclick = () => act({action: "suspend", TaskExecutionArn: arn, Item: item.Index});
  const resume = el("button", {"data-role": "item-resume"}, "Resume");
  resume.onclick = () => act({action: "resume", TaskExecutionArn: arn, Item: item.Index});
  return el("tr", {"data-item": String(item.Index)},
    el("td", {}, String(item.Index)), el("td", {}, item.Kind),
    el("td", {"data-role": "item-path"}, item.Kind === "TRANSFER" ? el("code", {},
      item.Path + (item.Recursive && item.Path !== "." ? "/" : "")) :
      el("span", {class: "muted"}, item.Kind === "PREPARE" ? "plans the split" : "deletes extras")),
    el("td", {"data-role": "item-status"}), el("td", {"data-role": "item-files"}),
    el("td", {"data-role": "item-bytes"}), el("td", {"data-role": "item-retries"}),
    el("td", {"data-role": "item-agent"}), el("td", {}, suspend, resume));
}

function updateItemRow(row, item) {
  const put = (role, text, data) => {
    const td = row.querySelector(`[data-role="${role}"]`);
    td.textContent = text;
    if (data !== undefined) td.setAttribute("data-value", data);
  };
  put("item-status", item.Status + (item.Target ? " → " + item.Target : ""), item.Status);
  put("item-files", `${item.FilesTransferred} / ${item.EstimatedFiles}`);
  put("item-bytes", `${bytes(item.BytesTransferred)} / ${bytes(item.EstimatedBytes)}`,
    String(item.BytesTransferred));
  put("item-retries", String(item.FailureRetryCount));
  put("item-agent", item.AgentArn ? shortArn(item.AgentArn) : "–");
  row.querySelector('[data-role="item-suspend"]').hidden = !isSuspendable(item);
  row.querySelector('[data-role="item-resume"]').hidden = !isSuspended(item);
}

function updateItems(entry, e) {
  const list = entry.itemsRow.querySelector('[data-role="item-list"]');
  const items = e.Items || [];
  let tbody = list.querySelector("tbody");
  if (!tbody) {
    tbody = el("tbody", {});
    list.replaceChildren(el("table", {class: "items"}, el("thead", {}, el("tr", {},
      ...["#", "kind", "path", "status", "files", "bytes", "retries", "agent", "actions"]
        .map(h => el("th", {}, h)))), tbody));
  }
  const live = new Set(items.map(i => i.Index));
  for (const [index, row] of entry.items) {
    if (!live.has(index)) { row.remove(); entry.items.delete(index); }
  }
  const rows = items.map(item => {
    let row = entry.items.get(item.Index);
    if (!row) { row = newItemRow(e.TaskExecutionArn, item); entry.items.set(item.Index, row); }
    updateItemRow(row, item);
    return row;
  });
  // index order (a long plan's listed items change as they finish); moved, never rebuilt
  if (rows.some((row, i) => tbody.children[i] !== row)) tbody.append(...rows);
  const shown = items.length < e.ItemsTotal ?
    `${items.length} of ${e.ItemsTotal} listed: the succeeded ones last` : String(items.length);
  entry.itemsRow.querySelector('[data-role="items-toggle"]').textContent =
    e.Itemized ? `work items (${shown})` : "work items (none yet: runs as one piece)";
}

function updateRunningRow(entry, e) {
  const row = entry.row;
  const speed = speedOf(e.TaskExecutionArn);
  const left = e.EstimatedBytesToTransfer - e.BytesTransferred;
  const put = (role, text, data) => {
    const td = row.querySelector(`[data-role="${role}"]`);
    td.textContent = text;
    if (data !== undefined) td.setAttribute("data-value", data);
  };
  put("status", e.Status);
  put("files", `${e.FilesTransferred} / ${e.EstimatedFilesToTransfer}`);
  put("bytes", `${bytes(e.BytesTransferred)} / ${bytes(e.EstimatedBytesToTransfer)}`,
    String(e.BytesTransferred));
  // nothing of a suspended execution runs: its speed of the last seconds says nothing about
  // now (it is 0) nor about when it ends
  const unfinished = (e.Items || [])
    .filter(i => i.Kind !== "PREPARE" && !ENDED.has(i.Status));
  const paused = unfinished.length > 0 && unfinished.every(i => i.Status === "SUSPENDED");
  if (paused) put("speed", "0 B/s", "0");
  else put("speed", isFinite(speed) ? bytes(speed) + "/s" : "–", isFinite(speed) ? speed.toFixed(0) : "");
  put("eta", paused ? "suspended" : duration(speed > 0 ? left / speed : NaN));
  row.querySelector('[data-role="spark"]').replaceChildren(sparkline(e.TaskExecutionArn));
  // the phase stays while suspended (DataSync has no such status): say it here
  const items = (e.Items || []).filter(i => i.Kind !== "PREPARE");
  const counts = Object.entries(e.ItemCounts || {}).map(([k, n]) => `${n} ${k}`).join(", ");
  put("items-summary", e.Itemized ? counts : "one piece", String(e.SuspendedItems || 0));
  const summary = row.querySelector('[data-role="items-summary"]');
  summary.setAttribute("data-running", String(items.filter(i => i.Status === "RUNNING").length));
  summary.classList.toggle("suspended", (e.SuspendedItems || 0) > 0);
  const suspend = row.querySelector('[data-role="suspend"]');
  const resume = row.querySelector('[data-role="resume"]');
  suspend.disabled = !e.CanSuspend;
  resume.disabled = !e.CanResume;
  if (!e.Itemized) suspend.title = resume.title =
    "not split into work items (yet): a tree too small to split runs as one piece";
  else suspend.title = resume.title = "";
  updateItems(entry, e);
}

function renderRunning(running) {
  const box = document.getElementById("running");
  let tbody = box.querySelector("tbody");
  if (!running.length) {
    runningRows.clear();
    box.replaceChildren(el("p", {class: "muted"}, "none"));
    return;
  }
  if (!tbody) {
    tbody = el("tbody", {});
    box.replaceChildren(el("table", {},
      el("thead", {}, el("tr", {}, ...RUNNING_HEADERS.map(h => el("th", {}, h)))), tbody));
  }
  const live = new Set(running.map(e => e.TaskExecutionArn));
  for (const [arn, entry] of runningRows) if (!live.has(arn)) {
    entry.row.remove(); entry.itemsRow.remove(); runningRows.delete(arn);
  }
  for (const e of running) {
    let entry = runningRows.get(e.TaskExecutionArn);
    if (!entry) {
      entry = newRunningRow(e);
      runningRows.set(e.TaskExecutionArn, entry);
      tbody.append(entry.row, entry.itemsRow);
    }
    updateRunningRow(entry, e);
  }
}

// The failed files of a finished execution: from its execution log, else the Result's
// ErrorDetail (which names the first few) when the task logs nothing.
function failedFiles(e) {
  const f = e.FailedFiles || {Files: []};
  if (f.Files.length) {
    const items = f.Files.map(x => el("li", {"data-role": "failed-file", title: x.Phase},
      el("code", {}, x.Path), " — " + x.Reason));
    if (f.More) items.push(el("li", {class: "muted"}, "more in the execution log"));
    return el("ul", {class: "failed"}, ...items);
  }
  return f.Detail ? el("span", {"data-role": "failed-detail"}, f.Detail) : "–";
}

function resultRow(e) {
  const r = e.Result || {};
  const failed = Object.values(e.FilesFailed || {}).reduce((a, b) => a + b, 0);
  const shownDetail = !((e.FailedFiles || {}).Files || []).length && (e.FailedFiles || {}).Detail;
  return el("tr", {"data-arn": e.TaskExecutionArn},
    el("td", {}, shortArn(e.TaskExecutionArn)), el("td", {"data-role": "status"}, e.Status),
    el("td", {}, `${e.FilesTransferred} files, ${bytes(e.BytesTransferred)}`),
    el("td", {"data-role": "failed-count"}, String(failed)),
    el("td", {"data-role": "failed-files"}, failedFiles(e)),
    el("td", {}, shownDetail ? (r.ErrorCode || "") :
      [r.ErrorCode, r.ErrorDetail].filter(Boolean).join(": ")));
}

function render(state) {
  for (const e of state.running) {
    const points = history.get(e.TaskExecutionArn) || [];
    points.push([state.now, e.BytesTransferred]);
    history.set(e.TaskExecutionArn, points.slice(-60));
  }
  renderRunning(state.running);
  document.getElementById("queued").replaceChildren(table(["execution", "task", "rate limit"],
    state.queued.map(e => el("tr", {"data-arn": e.TaskExecutionArn},
      el("td", {}, shortArn(e.TaskExecutionArn)), el("td", {}, shortArn(e.TaskArn)),
      el("td", {}, e.BytesPerSecond < 0 ? "unlimited" : bytes(e.BytesPerSecond) + "/s")))));
  document.getElementById("recent").replaceChildren(table(
    ["execution", "result", "moved", "failed", "failed files", "error"], state.recent.map(resultRow)));
  document.getElementById("tasks").replaceChildren(table(["task", "name", "status", "schedule"],
    state.tasks.map(t => el("tr", {}, el("td", {}, shortArn(t.TaskArn)), el("td", {}, t.Name),
      el("td", {}, t.Status), el("td", {}, t.ScheduleExpression || "–")))));
  document.getElementById("agents").replaceChildren(table(["agent", "name", "status", "last contact"],
    state.agents.map(a => el("tr", {}, el("td", {}, shortArn(a.AgentArn)), el("td", {}, a.Name),
      el("td", {"data-role": "agent-status"}, a.Status),
      el("td", {}, a.LastConnectionTime ? duration(state.now - a.LastConnectionTime) + " ago" : "never")))));
  document.getElementById("updated").textContent =
    "updated " + new Date(state.now * 1000).toLocaleTimeString();
}

async function poll() {
  try {
    const reply = await fetch("/ui/state.json", {credentials: "same-origin"});
    if (reply.status === 401) { location.href = "/ui/login"; return; }
    if (reply.ok) render(await reply.json());
  } catch (err) {
    document.getElementById("updated").textContent = "server unreachable, retrying…";
  }
}

poll();
setInterval(poll, 1000);
