// The simulator prints addresses as qubesd does; the forms live in the model, where the config
// validator uses them too (src/model/ip-address.ts).
export { parseIPv4, parseIPv6 } from "../../../model/ip-address.js";
