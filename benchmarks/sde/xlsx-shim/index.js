// The SDEverywhere compiler imports SheetJS for GET DIRECT ... spreadsheets; the
// benchmark model uses none, so these entry points only need to exist.
const unsupported = () => {
  throw new Error('spreadsheets are not supported in this benchmark setup')
}
const XLSX = {
  set_fs: () => {},
  readFile: unsupported,
  utils: { decode_cell: unsupported, encode_cell: unsupported, decode_col: unsupported, decode_row: unsupported }
}
export default XLSX
export const set_fs = XLSX.set_fs
export const readFile = XLSX.readFile
export const utils = XLSX.utils
