// The small upload controls beside a style (its region mask, its style-image mask) and under the styles
// (one colour-label image for all of them): "+ mask" until a file is chosen, then its thumbnail and a ✕.
import { $, h } from "./dom.js";
import { clearError, showErrors } from "./form_errors.js";

/**
 * One optional image of the form. `id`: the control's id (a refused form's mistakes find it by that),
 * `inputId` its file input's;
 * `text`: the button's words; `title`: what the image is for; `current`: the upload, or null;
 * `alt`: the thumbnail's text; `onFile(file)`: upload it (may throw); `onRemove()`.
 */
export function fileControl({ id, inputId, text, title, current, alt, removeLabel, onFile, onRemove }) {
  if (!current) {
    const input = h("input", {
      type: "file",
      id: inputId,
      accept: "image/*",
      class: "visually-hidden",
      onchange: (e) => {
        const file = e.target.files[0];
        e.target.value = "";
        if (file) onFile(file);
      },
    });
    return h("span", { class: "mask", id }, input, h("label", { for: inputId, class: "button small", title }, `+ ${text}`));
  }
  return h(
    "span",
    { class: "mask", id, title: `${current.name}: ${title}` },
    text,
    h("img", { src: current.preview || current.url, alt, class: "mask-thumb" }),
    h("button", { type: "button", class: "icon", "aria-label": removeLabel, onclick: onRemove }, "✕"),
  );
}

/** A style's optional images: its region mask (where it paints) and its style-image mask (the part of its painting used). */
export function styleControls(style, index, { upload, rerender, masks = true }) {
  const attach = (key, errorKey) => async (file) => {
    try {
      style[key] = await upload(file);
      clearError(`${errorKey}.${index}`);
    } catch (err) {
      showErrors({ [`${errorKey}.${index}`]: err.message });
      return;
    }
    rerender();
  };
  const detach = (key) => () => {
    style[key] = null;
    rerender();
  };
  const name = style.upload.name;
  return [
    // With a label image, its colours are the regions: no mask per style.
    !masks && !style.mask
      ? ""
      : fileControl({
          id: `mask-${index}`,
          inputId: `mask-file-${index}`,
          text: "mask",
          title: `A mask: white where ${name} paints`,
          current: style.mask,
          alt: `mask of ${name}`,
          removeLabel: `Remove the mask of ${name}`,
          onFile: attach("mask", "mask"),
          onRemove: detach("mask"),
        }),
    fileControl({
      id: `part-${index}`,
      inputId: `part-file-${index}`,
      text: "part",
      title: `A mask on the style image: white on the part of ${name} to take the style from`,
      current: style.part,
      alt: `the part of ${name} used`,
      removeLabel: `Remove the style-image mask of ${name}`,
      onFile: attach("part", "part"),
      onRemove: detach("part"),
    }),
  ];
}

/** The colour-label image: one upload whose flat colours mark each style's region, in the styles' order. */
export function labelsControl(form, { upload, rerender }) {
  const box = $("#labels-control");
  box.hidden = form.styles.length < 2 && !form.labels;
  box.replaceChildren(
    fileControl({
      id: "labels",
      inputId: "labels-file",
      text: "label image",
      title: "one image whose flat colours mark where each style paints: the first colour (left to right, top to bottom) for the first style, and so on",
      current: form.labels,
      alt: "the label image",
      removeLabel: "Remove the label image",
      onFile: async (file) => {
        try {
          form.labels = await upload(file);
          clearError("labels");
        } catch (err) {
          showErrors({ labels: err.message });
          return;
        }
        rerender();
      },
      onRemove: () => {
        form.labels = null;
        rerender();
      },
    }),
    form.labels ? "" : h("small", { class: "subtle" }, " or a mask per style"),
  );
}
