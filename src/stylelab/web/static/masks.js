// The region masks over the content: where each style will paint, in that style's colour
// (white in a mask: its style paints there), drawn on a canvas from the uploads themselves; or a
// colour-label image over the content, with the colours the server finds in it and the styles they
// go to; and each style image with the part its style-image mask keeps (the rest dimmed).
import { $, api, h } from "./dom.js";
import { seriesColour } from "./plot.js";

const loadImage = (src) =>
  new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error(`cannot show ${src}`));
    img.src = src;
  });

/** The content with each style's mask over it, in that style's colour: where each style will paint
 * (with a label image: the image itself over the content, and which colour goes to which style). */
export async function drawMaskPreview(content, styles, labels = null) {
  const box = $("#mask-preview");
  if (labels && content) return drawLabels(content, styles, labels);
  const masked = styles.map((s, i) => [s, i]).filter(([s]) => s.mask);
  box.hidden = !content || !masked.length;
  if (box.hidden) return;
  const srcOf = (u) => u.preview || u.url;
  let picture, masks;
  try {
    [picture, ...masks] = await Promise.all([loadImage(srcOf(content)), ...masked.map(([s]) => loadImage(srcOf(s.mask)))]);
  } catch {
    return;
  }
  const canvas = $("#mask-canvas");
  const width = Math.min(picture.naturalWidth, 480);
  const height = Math.max(1, Math.round((width * picture.naturalHeight) / picture.naturalWidth));
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(picture, 0, 0, width, height);
  const layer = document.createElement("canvas");
  layer.width = width;
  layer.height = height;
  const lctx = layer.getContext("2d", { willReadFrequently: true });
  masks.forEach((mask, k) => {
    const colour = seriesColour(masked[k][1]);
    const [r, g, b] = [1, 3, 5].map((i) => parseInt(colour.slice(i, i + 2), 16));
    lctx.clearRect(0, 0, width, height);
    lctx.drawImage(mask, 0, 0, width, height);
    const pixels = lctx.getImageData(0, 0, width, height);
    const d = pixels.data;
    for (let i = 0; i < d.length; i += 4) {
      const white = (0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2]) / 255; // white: the style paints here
      d[i] = r;
      d[i + 1] = g;
      d[i + 2] = b;
      d[i + 3] = Math.round(white * 150);
    }
    lctx.putImageData(pixels, 0, 0);
    ctx.drawImage(layer, 0, 0);
  });
  canvas.dataset.masks = String(masks.length);
  canvas.dataset.labels = "";
  const unmasked = styles.filter((s) => !s.mask);
  $("#mask-legend").replaceChildren(
    ...masked.map(([s, i]) => h("li", {}, h("span", { class: "swatch", style: `background:${seriesColour(i)}` }), s.upload.name)),
    ...unmasked.map((s) => h("li", {}, h("span", { class: "swatch rest" }), `${s.upload.name}: the rest`)),
  );
}

/** The canvas at the content's proportions (at most 480 px wide), the content drawn on it. */
function contentCanvas(picture) {
  const canvas = $("#mask-canvas");
  canvas.width = Math.min(picture.naturalWidth, 480);
  canvas.height = Math.max(1, Math.round((canvas.width * picture.naturalHeight) / picture.naturalWidth));
  const ctx = canvas.getContext("2d");
  ctx.drawImage(picture, 0, 0, canvas.width, canvas.height);
  return [canvas, ctx];
}

const srcOf = (u) => u.preview || u.url;

async function drawLabels(content, styles, labels) {
  const box = $("#mask-preview");
  box.hidden = false;
  let picture, image, colours;
  try {
    [picture, image, { colours }] = await Promise.all([
      loadImage(srcOf(content)),
      loadImage(srcOf(labels)),
      api(`/api/uploads/${labels.id}/labels`),
    ]);
  } catch (err) {
    $("#mask-legend").replaceChildren(h("li", { class: "error" }, err.message));
    return;
  }
  const [canvas, ctx] = contentCanvas(picture);
  ctx.globalAlpha = 0.55;
  ctx.drawImage(image, 0, 0, canvas.width, canvas.height);
  ctx.globalAlpha = 1;
  canvas.dataset.masks = "0";
  canvas.dataset.labels = String(colours.length);
  const items = colours.map((c, i) =>
    h("li", {}, h("span", { class: "swatch", style: `background:${c}` }), styles[i] ? styles[i].upload.name : "no style: keeps the photo"),
  );
  if (colours.length < styles.length) items.push(h("li", { class: "error" }, `${colours.length} colours for ${styles.length} styles: paint one per style`));
  $("#mask-legend").replaceChildren(...items);
}

/** Each style image with a style-image mask: the part its style is taken from, the rest dimmed. */
export async function drawParts(styles) {
  const box = $("#part-preview");
  const parted = styles.filter((s) => s.part);
  box.hidden = !parted.length;
  if (box.hidden) return;
  const figures = await Promise.all(
    parted.map(async (s) => {
      let style, mask;
      try {
        [style, mask] = await Promise.all([loadImage(srcOf(s.upload)), loadImage(srcOf(s.part))]);
      } catch {
        return null;
      }
      const canvas = h("canvas", { class: "part-canvas", role: "img", "aria-label": `${s.upload.name}, outside its style-image mask dimmed` });
      canvas.width = Math.min(style.naturalWidth, 200);
      canvas.height = Math.max(1, Math.round((canvas.width * style.naturalHeight) / style.naturalWidth));
      const ctx = canvas.getContext("2d", { willReadFrequently: true });
      ctx.drawImage(mask, 0, 0, canvas.width, canvas.height);
      const m = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
      ctx.drawImage(style, 0, 0, canvas.width, canvas.height);
      const pixels = ctx.getImageData(0, 0, canvas.width, canvas.height);
      const d = pixels.data;
      for (let i = 0; i < d.length; i += 4) {
        const kept = 0.25 + 0.75 * ((0.299 * m[i] + 0.587 * m[i + 1] + 0.114 * m[i + 2]) / 255); // black: dimmed
        d[i] *= kept;
        d[i + 1] *= kept;
        d[i + 2] *= kept;
      }
      ctx.putImageData(pixels, 0, 0);
      return h("li", {}, canvas, h("small", {}, s.upload.name));
    }),
  );
  $("#part-list").replaceChildren(...figures.filter(Boolean));
}
