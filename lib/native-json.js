'use strict';
/**
 * JSON for the native side; `undefined` values become `null` ("not given") instead of vanishing.
 * NaN and ±Infinity would also become `null` and silently mean "default"; they travel as strings
 * instead, so validation refuses them with a message naming the field.
 */
function toJson(obj) {
  return JSON.stringify(obj, (_key, value) => {
    if (value === undefined) return null;
    if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
    return value;
  });
}

module.exports = { toJson };
