'use strict';
/**
 * `formatErrorForUI(error)`: a title, message and remediation for showing any error to a user,
 * with genai-electron 0.26's texts per error class (apps display them as they are).
 */

const E = require('./errors.js');

const RETRY = 'Please try again. If the problem persists, check the logs for more details.';

/** The first matching row wins: subclasses come before their parents. */
const ROWS = [
  [E.ContextConstraintError, 'Context Capacity Requirement Not Met', (e) => suggestion(e) || 'Review the requested context policy, parallel request count, and available model metadata.'],
  [E.ModelNotFoundError, 'Model Not Found', (e) => suggestion(e) || 'Check that the model ID is correct and the model has been downloaded.'],
  [E.DownloadError, 'Download Failed', () => 'Check your internet connection and try again. If the problem persists, verify the download URL is correct.'],
  [E.InsufficientResourcesError, 'Not Enough Resources', (e) => suggestion(e) || 'Try closing other applications to free up resources, or use a smaller model.'],
  [E.PortInUseError, 'Port Already In Use', (e) => suggestion(e) || 'Choose a different port or stop the application using this port.'],
  [E.ServerError, 'Server Error', () => 'Check the server logs for more details. The server may need to be restarted.'],
  [E.FileSystemError, 'File System Error', () => 'Check that you have sufficient permissions and disk space, then try again.'],
  [E.ChecksumError, 'Checksum Verification Failed', (e) => suggestion(e) || 'The downloaded file may be corrupted. Try downloading again.'],
  [E.BinaryError, 'Binary Error', () => 'The binary may be missing or corrupted. Try restarting the application to trigger a fresh download.'],
  [E.GenaiElectronError, 'Operation Failed', (e) => suggestion(e)],
];

function suggestion(error) {
  const d = error.details;
  return d !== null && typeof d === 'object' && typeof d.suggestion === 'string' ? d.suggestion : undefined;
}

/** The calibration-stability error reports its own `details.code` and a longer message. */
function resourceStability(error) {
  const d = error.details && typeof error.details === 'object' ? error.details : {};
  return {
    code: d.code,
    title:
      d.code === 'CALIBRATION_RESOURCE_DRIFT'
        ? 'Machine Resources Changed During Calibration'
        : 'Machine Resource Stability Could Not Be Verified',
    message: `${error.message}. Calibration was stopped and produced no usable recommendation; close heavy applications and other GPU work, then run it again from the beginning.`,
    remediation: d.suggestion,
  };
}

function formatErrorForUI(error) {
  if (error instanceof E.LlamaCalibrationResourceStabilityError) return resourceStability(error);
  for (const [Class, title, remediation] of ROWS) {
    if (error instanceof Class) return { code: error.code, title, message: error.message, remediation: remediation(error) };
  }
  if (error instanceof Error) {
    return { code: 'UNKNOWN_ERROR', title: 'Unknown Error', message: error.message || 'An unexpected error occurred.', remediation: RETRY };
  }
  const text = error !== null && error !== undefined ? String(error) : '';
  return { code: 'UNKNOWN_ERROR', title: 'Unknown Error', message: text || 'An unexpected error occurred.', remediation: RETRY };
}

module.exports = { formatErrorForUI };
