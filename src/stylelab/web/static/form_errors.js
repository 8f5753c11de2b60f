// A refused form's mistakes, each shown by the field it concerns (and all of them in a list by the
// Start button, each a link to its field). Keys as the server gives them (web/job_form.py): a setting's
// name, recipe, content, styles, start, labels, style.N, blend.N, mask.N, part.N, form.
import { $, h } from "./dom.js";

/** Where the message for a key goes, and the control it concerns (to mark and to focus). */
function placeOf(key) {
  const [kind, index] = key.split(".");
  if (index !== undefined) {
    const control = {
      style: `#style-list li[data-index="${index}"] .thumb-name`,
      blend: `#style-weight-${index}`,
      mask: `#mask-${index} :is(label, img)`,
      part: `#part-${index} :is(label, img)`,
    }[kind];
    return { box: $(`#err-${kind}-${index}`), control: control && $(control) };
  }
  if (key === "labels") return { box: $("#labels-status"), control: $("#labels :is(label, img)") };
  if (["content", "styles", "start"].includes(key)) {
    const role = key === "styles" ? "style" : key;
    return { box: $(`#${role}-status`), control: $(`#${role}-file`) };
  }
  const control = key === "recipe" ? $("#recipe") : $(`#f-${key}`);
  if (!control) return { box: null, control: null };
  const field = control.closest(".field");
  let box = field.querySelector(".field-error");
  if (!box) {
    box = h("p", { class: "field-error", id: `err-${key}` });
    field.append(box);
  }
  return { box, control };
}

export function clearError(key) {
  const { box, control } = placeOf(key);
  if (box) {
    box.textContent = "";
    box.classList.remove("error");
  }
  if (control) control.removeAttribute("aria-invalid");
}

export function clearErrors() {
  for (const box of document.querySelectorAll("#job-form .field-error")) box.textContent = "";
  for (const box of document.querySelectorAll("#job-form .drop-status.error")) {
    box.textContent = "";
    box.classList.remove("error");
  }
  for (const el of document.querySelectorAll("#job-form [aria-invalid]")) el.removeAttribute("aria-invalid");
  $("#form-error").replaceChildren();
}

/** Show each mistake by its field, and all of them in a list by the Start button (each a link to its field). */
export function showErrors(errors) {
  const items = [];
  for (const [key, message] of Object.entries(errors)) {
    const { box, control } = placeOf(key);
    if (box) {
      box.textContent = message;
      box.classList.add("error");
    }
    if (control) {
      control.setAttribute("aria-invalid", "true");
      const described = (control.getAttribute("aria-describedby") || "").split(" ").filter(Boolean);
      if (box && box.id && !described.includes(box.id)) control.setAttribute("aria-describedby", [...described, box.id].join(" "));
      const details = control.closest("details");
      if (details) details.open = true;
    }
    const go = () => control && control.focus();
    items.push(h("li", {}, control ? h("a", { href: "#", onclick: (e) => (e.preventDefault(), go()) }, message) : message));
  }
  const n = items.length;
  $("#form-error").replaceChildren(
    h("strong", {}, n === 1 ? "One thing to fix before this can start:" : `${n} things to fix before this can start:`),
    h("ul", {}, items),
  );
}
