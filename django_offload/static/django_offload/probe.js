/**
 * @file Probe of what this device can run: WebGPU (an adapter that really
 * creates a device, its limits, whether it is a software fallback adapter,
 * `shader-f16`), cross-origin isolation, cores, memory and storage quota.
 * The result is the capabilities JSON that the server's `fit.py` validates.
 * @module django_offload/probe
 */

import { getLogger } from "./log.js";

const log = getLogger("probe");

/** Adapter limits reported to the server (all numbers). */
const REPORTED_LIMITS = [
  "maxBufferSize",
  "maxStorageBufferBindingSize",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxStorageBuffersPerShaderStage",
];
const MAX_TEXT = 200;

function clip(value) {
  return String(value ?? "").slice(0, MAX_TEXT);
}

/**
 * Tells whether an adapter is a software one. Chromium reports it as
 * `adapter.info.isFallbackAdapter` (newer) or `adapter.isFallbackAdapter`
 * (older); SwiftShader is also recognised by its architecture name.
 * @param {GPUAdapter} adapter WebGPU adapter.
 * @returns {boolean} True for a fallback (software) adapter.
 */
export function isFallbackAdapter(adapter) {
  const info = adapter.info ?? {};
  if (info.isFallbackAdapter === true || adapter.isFallbackAdapter === true) {
    return true;
  }
  const names = `${info.architecture ?? ""} ${info.description ?? ""}`;
  return /swiftshader/i.test(names);
}

function readLimits(adapter) {
  const limits = {};
  for (const name of REPORTED_LIMITS) {
    const value = adapter.limits?.[name];
    if (Number.isSafeInteger(value) && value >= 0) limits[name] = value;
  }
  return limits;
}

async function tryDevice(adapter, shaderF16) {
  try {
    const device = await adapter.requestDevice({
      requiredFeatures: shaderF16 ? ["shader-f16"] : [],
    });
    device.destroy();
    return { device: true };
  } catch (error) {
    return { device: false, error: clip(error?.message ?? error) };
  }
}

/**
 * Probes WebGPU: requests an adapter and then a device, because an adapter
 * alone does not prove the model can run.
 * @param {GPU|undefined} gpu `navigator.gpu`.
 * @returns {Promise<object|null>} `{adapter, device, fallback, shaderF16,
 *   limits, vendor, architecture, error?}`, or null without WebGPU.
 */
export async function probeWebGpu(gpu) {
  if (!gpu) return null;
  const none = { adapter: false, device: false, fallback: false, shaderF16: false };
  let adapter;
  try {
    adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
  } catch (error) {
    return { ...none, error: clip(error?.message ?? error) };
  }
  if (!adapter) return none;
  const shaderF16 = adapter.features.has("shader-f16");
  const info = adapter.info ?? {};
  const result = {
    adapter: true,
    fallback: isFallbackAdapter(adapter),
    shaderF16,
    limits: readLimits(adapter),
    vendor: clip(info.vendor),
    architecture: clip(info.architecture),
    ...(await tryDevice(adapter, shaderF16)),
  };
  log.debug("webgpu", result);
  return result;
}

async function storageEstimate(storage) {
  if (!storage?.estimate) return { quota: null, usage: null };
  try {
    const { quota, usage } = await storage.estimate();
    const whole = (n) => (Number.isFinite(n) && n >= 0 ? Math.floor(n) : null);
    return { quota: whole(quota), usage: whole(usage) };
  } catch (error) {
    log.warn("storage estimate failed:", error?.message);
    return { quota: null, usage: null };
  }
}

/**
 * Probes the device's capabilities.
 * @param {object} [options]
 * @param {boolean|null} [options.consent] The user's consent, if known.
 * @param {Navigator} [options.nav] Navigator to probe (tests pass their own).
 * @param {boolean} [options.isolated] `crossOriginIsolated` of the page.
 * @returns {Promise<object>} Capabilities JSON for the fit view.
 */
export async function probeCapabilities({
  consent = null,
  nav = globalThis.navigator,
  isolated = globalThis.crossOriginIsolated === true,
} = {}) {
  const [webgpu, storage] = await Promise.all([
    probeWebGpu(nav.gpu),
    storageEstimate(nav.storage),
  ]);
  const cores = nav.hardwareConcurrency;
  const memory = nav.deviceMemory;
  return {
    webgpu,
    crossOriginIsolated: isolated,
    hardwareConcurrency: Number.isSafeInteger(cores) && cores > 0 ? cores : 1,
    deviceMemory: Number.isFinite(memory) && memory > 0 ? memory : null,
    storageQuota: storage.quota,
    storageUsage: storage.usage,
    consent,
  };
}
