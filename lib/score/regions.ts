/**
 * Defect regions: connected components (8-neighbour) of the thresholded anomaly map, each with its
 * bounding box, area and peak score, in the coordinates of the original image.
 */
export interface DefectRegion {
  x: number;
  y: number;
  width: number;
  height: number;
  area: number;
  peakScore: number;
}

export function findRegions(
  map: Float32Array,
  width: number,
  height: number,
  threshold: number,
  toImage: { scaleX: number; scaleY: number; offsetX: number; offsetY: number } = {
    scaleX: 1,
    scaleY: 1,
    offsetX: 0,
    offsetY: 0,
  },
): DefectRegion[] {
  // Most frames have no pixel over the threshold: find that out before allocating anything (a
  // sheet's map is a million pixels), and size the flood's stack by the pixels over it.
  let over = 0;
  for (let i = 0; i < map.length; i++) if (map[i] >= threshold) over++;
  if (over === 0) return [];
  const seen = new Uint8Array(width * height);
  const stack = new Int32Array(over);
  const regions: DefectRegion[] = [];
  for (let start = 0; start < map.length; start++) {
    if (seen[start] !== 0 || !(map[start] >= threshold)) continue;
    let top = 0;
    stack[top++] = start;
    seen[start] = 1;
    let minX = width,
      minY = height,
      maxX = -1,
      maxY = -1,
      area = 0,
      peak = -Infinity;
    while (top > 0) {
      const p = stack[--top];
      const px = p % width;
      const py = (p - px) / width;
      area++;
      if (map[p] > peak) peak = map[p];
      if (px < minX) minX = px;
      if (px > maxX) maxX = px;
      if (py < minY) minY = py;
      if (py > maxY) maxY = py;
      for (let dy = -1; dy <= 1; dy++) {
        const ny = py + dy;
        if (ny < 0 || ny >= height) continue;
        for (let dx = -1; dx <= 1; dx++) {
          const nx = px + dx;
          if (nx < 0 || nx >= width) continue;
          const q = ny * width + nx;
          if (seen[q] === 0 && map[q] >= threshold) {
            seen[q] = 1;
            stack[top++] = q;
          }
        }
      }
    }
    regions.push({
      x: Math.round(minX * toImage.scaleX + toImage.offsetX),
      y: Math.round(minY * toImage.scaleY + toImage.offsetY),
      width: Math.max(1, Math.round((maxX - minX + 1) * toImage.scaleX)),
      height: Math.max(1, Math.round((maxY - minY + 1) * toImage.scaleY)),
      area: Math.round(area * toImage.scaleX * toImage.scaleY),
      peakScore: peak,
    });
  }
  return regions.sort((a, b) => b.peakScore - a.peakScore);
}
