// The mlp-serve demo: draw or drop a digit, show what the mnist model predicts; a form for each
// feature model from its card; list the models.
// Plain browser JavaScript, no build step; every call goes through apiFetch (API key, errors).
"use strict";

const MODEL = "mnist";
const PREDICT_URL = `/v1/models/${MODEL}:predict-image?return_input=true`;
const KEY_STORAGE = "mlp-serve.api-key";
const STROKE = { width: 20, ink: "#000", paper: "#fff" };
const CLASSES = 10;

const $ = (id) => document.getElementById(id);

// ---- API: the key, the one fetch wrapper, error messages ------------------------------------

let keyPrompt = null; // the open key dialog's promise, shared by concurrent calls

function storedKey() {
  return sessionStorage.getItem(KEY_STORAGE);
}

function withKey(init, key) {
  const headers = new Headers(init.headers);
  if (key) headers.set("X-API-Key", key);
  return { ...init, headers };
}

/** fetch(), with the API key when one is kept; asks for it on 401 (missing) or 403 (wrong). */
async function apiFetch(path, init = {}) {
  for (;;) {
    const key = storedKey();
    const response = await fetch(path, withKey(init, key));
    if (response.status !== 401 && response.status !== 403) return response;
    if (storedKey() !== key) continue; // another call got a key meanwhile: retry with it
    const reason = key
      ? "The server refused that key; try another."
      : "This server needs an API key for its models.";
    if (!(await askForKey(reason))) return response;
  }
}

/** Opens the key dialog once for all waiting calls; resolves to the key, or null if cancelled. */
function askForKey(reason) {
  if (!keyPrompt) {
    keyPrompt = new Promise((resolve) => {
      const dialog = $("key-dialog");
      $("key-reason").textContent = reason;
      $("key-input").value = "";
      dialog.addEventListener(
        "close",
        () => {
          const key = dialog.returnValue === "use" ? $("key-input").value.trim() : "";
          if (key) sessionStorage.setItem(KEY_STORAGE, key);
          keyPrompt = null;
          resolve(key || null);
        },
        { once: true },
      );
      dialog.returnValue = "";
      dialog.showModal();
    });
  }
  return keyPrompt;
}

/** The server's `{"error": "..."}` message, or the HTTP status when the body is not that. */
async function errorOf(response) {
  try {
    const body = await response.json();
    if (body && typeof body.error === "string") return body.error;
  } catch {
    // not JSON: fall through to the status line
  }
  return `${response.status} ${response.statusText || "error"}`;
}

async function getJson(path) {
  const response = await apiFetch(path);
  if (!response.ok) throw new Error(await errorOf(response));
  return response.json();
}

// ---- Drawing -----------------------------------------------------------------------------------

const canvas = $("canvas");
const pen = canvas.getContext("2d");
let lastPoint = null; // where the stroke in progress is, in canvas pixels; null between strokes

function clearCanvas() {
  pen.fillStyle = STROKE.paper; // opaque paper: the PNG needs no transparency handling
  pen.fillRect(0, 0, canvas.width, canvas.height);
}

function canvasPoint(event) {
  const box = canvas.getBoundingClientRect();
  return {
    x: ((event.clientX - box.left) * canvas.width) / box.width,
    y: ((event.clientY - box.top) * canvas.height) / box.height,
  };
}

function drawSegment(from, to) {
  pen.strokeStyle = STROKE.ink;
  pen.lineWidth = STROKE.width;
  pen.lineCap = "round";
  pen.lineJoin = "round";
  pen.beginPath();
  pen.moveTo(from.x, from.y);
  pen.lineTo(to.x, to.y);
  pen.stroke();
}

function startStroke(event) {
  if (event.button !== 0) return;
  event.preventDefault();
  canvas.setPointerCapture(event.pointerId);
  lastPoint = canvasPoint(event);
  drawSegment(lastPoint, lastPoint); // a tap leaves a dot
}

function continueStroke(event) {
  if (!lastPoint) return;
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  for (const each of events.length ? events : [event]) {
    const point = canvasPoint(each);
    drawSegment(lastPoint, point);
    lastPoint = point;
  }
}

function endStroke() {
  if (!lastPoint) return;
  lastPoint = null;
  markBusy();
  canvas.toBlob((png) => predict(png, "canvas.png"), "image/png");
}

/** Shows an uploaded picture on the canvas (fitted, centred) so strokes can be added to it. */
async function showPicture(file) {
  clearCanvas();
  try {
    const picture = await createImageBitmap(file);
    const scale = Math.min(canvas.width / picture.width, canvas.height / picture.height);
    const width = picture.width * scale;
    const height = picture.height * scale;
    pen.drawImage(picture, (canvas.width - width) / 2, (canvas.height - height) / 2, width, height);
    picture.close();
  } catch {
    // a format this browser cannot show (TIFF): the server still reads it
  }
}

// ---- Predictions -------------------------------------------------------------------------------

let latestRequest = 0; // answers to older requests (or from before Clear) are dropped
let pending = 0;

function markBusy() {
  pending += 1;
  $("result").setAttribute("aria-busy", "true");
}

function markDone() {
  pending = Math.max(0, pending - 1);
  $("result").setAttribute("aria-busy", String(pending > 0));
}

/** POSTs one image as multipart field `file`; shows the answer if no newer request was made. */
async function predict(image, filename) {
  const request = ++latestRequest;
  const form = new FormData();
  form.append("file", image, filename);
  try {
    const response = await apiFetch(PREDICT_URL, { method: "POST", body: form });
    const answer = response.ok ? await response.json() : { error: await errorOf(response) };
    if (request !== latestRequest) return;
    if (answer.error) showError(answer.error);
    else showPrediction(answer, filename);
  } catch (error) {
    if (request === latestRequest) showError(`cannot reach the server: ${error.message}`);
  } finally {
    markDone();
  }
}

function predictFile(file) {
  if (!file) return;
  markBusy();
  showPicture(file);
  predict(file, file.name);
}

function showStatus(message, isError = false) {
  const status = $("status");
  status.textContent = message;
  status.classList.toggle("error", isError);
}

function showPrediction(answer, filename) {
  const [prediction] = answer.predictions;
  const probabilities = prediction.probabilities;
  const confidence = probabilities[prediction.label];
  const digit = prediction.class_name ?? String(prediction.label);
  // Flagged: the server's threshold on digit_score says the picture holds no digit.
  $("prediction").textContent = prediction.not_a_digit ? "not a digit" : digit;
  $("prediction").classList.toggle("not-a-digit", prediction.not_a_digit === true);
  showBars(probabilities, prediction.label);
  showModelInput(prediction.input_png);
  const guess = prediction.not_a_digit ? `at most a ${digit}, ` : "";
  showStatus(
    `${guess}${percent(confidence)} sure · ${answer.model_name} v${answer.model_version} · ` +
      filename,
  );
}

function showError(message) {
  resetResult();
  showStatus(message, true);
}

function resetResult() {
  $("prediction").textContent = "";
  $("prediction").classList.remove("not-a-digit");
  showBars(new Array(CLASSES).fill(0), -1);
  showModelInput(null);
}

function showModelInput(base64Png) {
  const image = $("model-input");
  image.hidden = !base64Png;
  if (base64Png) image.src = `data:image/png;base64,${base64Png}`;
  else image.removeAttribute("src");
}

function percent(probability) {
  return `${(probability * 100).toFixed(1)}%`;
}

// ---- Probability bars --------------------------------------------------------------------------

function buildBars() {
  const list = $("probabilities");
  for (let digit = 0; digit < CLASSES; digit++) {
    const row = document.createElement("li");
    row.className = "bar";
    row.innerHTML =
      '<span class="bar-digit"></span><span class="bar-track"><span class="bar-fill"></span>' +
      '</span><span class="bar-value"></span>';
    row.querySelector(".bar-digit").textContent = digit;
    list.append(row);
  }
  showBars(new Array(CLASSES).fill(0), -1);
}

function showBars(probabilities, best) {
  const rows = $("probabilities").children;
  probabilities.forEach((probability, digit) => {
    const row = rows[digit];
    row.classList.toggle("best", digit === best);
    row.querySelector(".bar-fill").style.width = percent(probability);
    row.querySelector(".bar-value").textContent = percent(probability);
  });
}

// ---- Feature form ------------------------------------------------------------------------------

const featureModels = new Map(); // name -> card, for every ready model whose card names features
let latestFeatureRequest = 0;

/** A model the form can serve: its card names the features, and they are not an image's pixels. */
function takesNamedFeatures(model) {
  const input = model.card?.input;
  return model.ready && Array.isArray(input?.feature_names) && !input.image;
}

function showFeatureModels(statuses) {
  featureModels.clear();
  for (const model of statuses.filter(takesNamedFeatures)) {
    featureModels.set(model.name, model.card);
  }
  const select = $("feature-model");
  select.replaceChildren(...[...featureModels.keys()].map((name) => new Option(name, name)));
  $("features-panel").hidden = featureModels.size === 0;
  if (featureModels.size) buildFeatureFields(select.value);
}

/** One labelled field per feature, filled with the card's example row, else zeros. */
function buildFeatureFields(name) {
  latestFeatureRequest += 1; // an answer for the previous model is no longer wanted
  const input = featureModels.get(name).input;
  const example = input.example ?? input.feature_names.map(() => 0);
  const fields = $("feature-fields");
  const legend = fields.querySelector("legend");
  const inputs = input.feature_names.map((feature, i) => featureField(feature, example[i]));
  fields.replaceChildren(legend, ...inputs);
  $("feature-source").textContent = input.example
    ? `Filled with the example row of ${name}'s card; values in the model's raw units.`
    : `${name}'s card gives no example row: every field starts at 0. Values in raw units.`;
  showFeatureResult("", "");
}

function featureField(feature, value) {
  const label = document.createElement("label");
  label.className = "feature-field";
  const name = document.createElement("span");
  name.textContent = feature;
  const field = document.createElement("input");
  field.name = feature;
  field.type = "text"; // the server checks the values and says what is wrong
  field.inputMode = "decimal";
  field.autocomplete = "off";
  field.spellcheck = false;
  field.value = String(value);
  label.append(name, field);
  return label;
}

/** The form as one v1 instance keyed by feature name: a number where the text is one, the text
 * as typed otherwise (so the server's message names it), nothing for an empty field. */
function featureInstance() {
  const instance = {};
  for (const field of $("feature-fields").querySelectorAll("input")) {
    const text = field.value.trim();
    if (text === "") continue;
    const number = Number(text);
    instance[field.name] = Number.isFinite(number) ? number : text;
  }
  return instance;
}

async function predictFeatures(event) {
  event.preventDefault();
  const request = ++latestFeatureRequest;
  const name = $("feature-model").value;
  const card = featureModels.get(name);
  const panel = $("features-panel");
  panel.setAttribute("aria-busy", "true");
  try {
    const response = await apiFetch(`/v1/models/${encodeURIComponent(name)}:predict`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ instances: [featureInstance()] }),
    });
    const answer = response.ok ? await response.json() : { error: await errorOf(response) };
    if (request !== latestFeatureRequest) return;
    if (answer.error) showFeatureResult("", answer.error, true);
    else showFeatureAnswer(answer, card);
  } catch (error) {
    if (request === latestFeatureRequest) {
      showFeatureResult("", `cannot reach the server: ${error.message}`, true);
    }
  } finally {
    if (request === latestFeatureRequest) panel.setAttribute("aria-busy", "false");
  }
}

/** A class name with its probability, or a regressor's value with the card's name for it. */
function showFeatureAnswer(answer, card) {
  const [prediction] = answer.predictions;
  const model = `${answer.model_name} v${answer.model_version}`;
  if ("value" in prediction) {
    showFeatureResult(formatNumber(prediction.value), `${card.output.value_name} · ${model}`);
  } else {
    const confidence = percent(prediction.probabilities[prediction.label]);
    const name = prediction.class_name ?? String(prediction.label);
    showFeatureResult(name, `${confidence} sure · ${model}`);
  }
}

function showFeatureResult(prediction, message, isError = false) {
  $("feature-prediction").textContent = prediction;
  const status = $("feature-status");
  status.textContent = message;
  status.classList.toggle("error", isError);
}

function wireFeatureForm() {
  $("feature-model").addEventListener("change", (event) => buildFeatureFields(event.target.value));
  $("features-form").addEventListener("submit", predictFeatures);
}

// ---- Models panel ------------------------------------------------------------------------------

async function loadModels() {
  const status = $("models-status");
  try {
    const { models } = await getJson("/v1/models");
    const statuses = await Promise.all(
      models.map((name) => getJson(`/v1/models/${encodeURIComponent(name)}`)),
    );
    $("models").replaceChildren(...statuses.map(modelCard));
    showFeatureModels(statuses);
    status.textContent = `${models.length} models served.`;
    status.classList.remove("error");
  } catch (error) {
    status.textContent = `Cannot list the models: ${error.message}`;
    status.classList.add("error");
  }
}

function modelCard(model) {
  const card = $("model-card").content.firstElementChild.cloneNode(true);
  card.dataset.model = model.name;
  card.querySelector(".model-name").textContent = model.name;
  const state = card.querySelector(".model-state");
  state.textContent = model.ready ? "ready" : "not ready";
  state.classList.add(model.ready ? "ok" : "bad");
  const info = model.card;
  card.querySelector(".model-description").textContent =
    info?.description ?? model.reason ?? "No model card.";
  if (info) {
    addFacts(card.querySelector(".model-facts"), modelFacts(model, info));
    showCurves(card.querySelector(".model-curves"), model.name, model.default_version);
  }
  return card;
}

function modelFacts(model, info) {
  const facts = [
    ["task", info.task],
    ["version", String(info.version)],
  ];
  if (model.versions.length > 1) facts.push(["versions served", model.versions.join(", ")]);
  for (const [metric, value] of Object.entries(info.metrics)) {
    if (metric.startsWith("test_") || metric.startsWith("all_")) facts.push([metric, value]);
  }
  for (const bar of info.bars ?? []) {
    const verdict = bar.passed ? "✓ met" : "✗ missed";
    facts.push([`bar: ${bar.metric}`, `${bar.op} ${formatNumber(bar.threshold)} ${verdict}`]);
  }
  return facts;
}

function addFacts(list, facts) {
  for (const [term, value] of facts) {
    const dt = document.createElement("dt");
    const dd = document.createElement("dd");
    dt.textContent = term;
    dd.textContent = typeof value === "number" ? formatNumber(value) : value;
    list.append(dt, dd);
  }
}

function formatNumber(value) {
  if (Number.isInteger(value)) return String(value);
  return Math.abs(value) < 0.01 ? value.toExponential(2) : value.toFixed(4);
}

/** Curves come as a blob through apiFetch: an <img src> could not send the API key. */
async function showCurves(image, name, version) {
  const path = `/v1/models/${encodeURIComponent(name)}/versions/${encodeURIComponent(version)}`;
  let curves;
  try {
    const response = await apiFetch(`${path}/curves.png`);
    if (!response.ok) return; // a version without curves: the card stands without them
    curves = await response.blob();
  } catch {
    return;
  }
  image.src = URL.createObjectURL(curves);
  image.alt = `Training curves of ${name} version ${version}: loss and validation metric per epoch`;
  image.hidden = false;
}

// ---- Wiring ------------------------------------------------------------------------------------

function clearAll() {
  latestRequest += 1; // drop answers still on their way
  clearCanvas();
  resetResult();
  $("file-input").value = "";
  showStatus("Draw a digit to start.");
}

function wireCanvas() {
  canvas.addEventListener("pointerdown", startStroke);
  canvas.addEventListener("pointermove", continueStroke);
  canvas.addEventListener("pointerup", endStroke);
  canvas.addEventListener("pointercancel", endStroke);
}

function wireFiles() {
  $("file-input").addEventListener("change", (event) => predictFile(event.target.files[0]));
  const zone = $("dropzone");
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    predictFile(event.dataTransfer.files[0]);
  });
}

function wireKeyDialog() {
  $("key-cancel").addEventListener("click", () => $("key-dialog").close(""));
}

function start() {
  clearCanvas();
  buildBars();
  wireCanvas();
  wireFiles();
  wireKeyDialog();
  wireFeatureForm();
  $("clear").addEventListener("click", clearAll);
  loadModels();
}

start();
