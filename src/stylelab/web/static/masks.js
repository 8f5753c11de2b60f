// The region masks over the content: where each style will paint, in that style's colour
// (white in a mask: its style paints there), drawn on a canvas from the uploads themselves.
import { $, h } from "./dom.js";
import { seriesColour } from "./plot.js";

const loadImage = (src) =>
  new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error(`cannot show ${src}`));
    img.src = src;
  });

/** The content with each style's mask over it, in that style's colour: where each style will paint. */
export async function drawMaskPreview(content, styles) {
  const box = $("#mask-preview");
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
  const unmasked = styles.filter((s) => !s.mask);
  $("#mask-legend").replaceChildren(
    ...masked.map(([s, i]) => h("li", {}, h("span", { class: "swatch", style: `background:${seriesColour(i)}` }), s.upload.name)),
    ...unmasked.map((s) => h("li", {}, h("span", { class: "swatch rest" }), `${s.upload.name}: the rest`)),
  );
}
