// Checks that a set of .proto declarations is a faithful subset of another one (the project's reduced
// copies of Envoy's ext_proc protos against Envoy's published originals). Pure reflection: it compares
// two already-loaded protobufjs roots and returns human-readable differences, nothing is thrown.
import fs from "node:fs";
import path from "node:path";
import { Enum, Field, MapField, Namespace, Root, Service, Type } from "protobufjs";
// NamespaceBase exists only as a type; at run time Type, Service and Root all extend Namespace.
import type { NamespaceBase, ReflectionObject } from "protobufjs";

/** Parse options for every root these tests build: keep snake_case names, as they appear in the .proto files. */
export const PARSE_OPTIONS = { keepCase: true } as const;

// protobufjs bundles JSON copies of the common well-known types (any, duration, struct, wrappers, ...)
// and serves them without calling resolvePath. descriptor.proto is not among them (Envoy's annotation
// protos import it to declare their options), but protobufjs ships it as a plain file in its package.
const PROTOBUFJS_DIR = path.dirname(require.resolve("protobufjs/package.json"));

/**
 * A Root whose imports resolve against `includeDirs` in order, like `protoc -I a -I b`. Imports are
 * always include-root-relative in these protos, never relative to the importing file.
 */
export function newRootWithIncludes(includeDirs: readonly string[]): Root {
  const dirs = [...includeDirs, PROTOBUFJS_DIR];
  const root = new Root();
  root.resolvePath = (_origin: string, target: string): string => {
    if (path.isAbsolute(target) && fs.existsSync(target)) return target;
    for (const dir of dirs) {
      const candidate = path.join(dir, target);
      if (fs.existsSync(candidate)) return candidate;
    }
    // Returning null would make protobufjs skip the import silently; fail loudly instead.
    throw new Error(`proto import not found in ${dirs.join(", ")}: ${target}`);
  };
  return root;
}

/** Loads `files` (include-root-relative paths) into a fresh root searching `includeDirs`. */
export function loadProtos(files: readonly string[], includeDirs: readonly string[]): Root {
  const root = newRootWithIncludes(includeDirs);
  root.loadSync([...files], PARSE_OPTIONS);
  return root;
}

// The well-known types in a project root come from protobufjs's bundle, not from the project's files.
const WELL_KNOWN_NAMESPACE = ".google.protobuf";

const display = (obj: ReflectionObject): string => obj.fullName.replace(/^\./, "");

/** Scalar name, or the fully-qualified name of the resolved message/enum type. */
function typeName(field: Field | MapField): string {
  return field.resolvedType ? display(field.resolvedType) : field.type;
}

/** Repeated / map / explicit presence all change the wire format or its meaning, so all are compared. */
function labelOf(field: Field): string {
  if (field instanceof MapField) return `map<${field.keyType}, ${typeName(field)}>`;
  if (field.repeated) return "repeated";
  // proto3 `optional` (explicit presence): an unset field and a zero value are distinguishable.
  if (field.options?.["proto3_optional"] === true) return "optional";
  if (field.required) return "required";
  return "singular";
}

/** Name of the real oneof holding `field`; the synthetic oneof of a proto3 `optional` is not one. */
function oneofOf(field: Field): string | undefined {
  const oneof = field.partOf;
  return oneof && !oneof.isProto3Optional ? oneof.name : undefined;
}

function compareField(mine: Field, theirs: Field, errors: string[]): void {
  const name = display(mine);
  if (mine.id !== theirs.id) errors.push(`${name}: field number ${mine.id}, Envoy has ${theirs.id}`);
  if (typeName(mine) !== typeName(theirs)) {
    errors.push(`${name}: type ${typeName(mine)}, Envoy has ${typeName(theirs)}`);
  }
  if (labelOf(mine) !== labelOf(theirs)) errors.push(`${name}: label ${labelOf(mine)}, Envoy has ${labelOf(theirs)}`);
  // Checked both ways: a oneof member is always serialized when set (even as 0/false/""), a plain
  // proto3 scalar is not, and setting one member clears the others.
  const [myOneof, theirOneof] = [oneofOf(mine), oneofOf(theirs)];
  if (myOneof !== theirOneof) {
    errors.push(`${name}: oneof ${myOneof ?? "(none)"}, Envoy has ${theirOneof ?? "(none)"}`);
  }
  if (mine.extend !== undefined || theirs.extend !== undefined) {
    const [a, b] = [mine.extensionField?.parent, theirs.extensionField?.parent];
    if ((a && display(a)) !== (b && display(b))) errors.push(`${name}: extends a different message than Envoy's`);
  }
}

function compareType(mine: Type, theirs: Type, errors: string[]): void {
  for (const field of mine.fieldsArray) {
    const other = theirs.fields[field.name];
    if (other === undefined) errors.push(`${display(field)}: field not in Envoy's ${display(theirs)}`);
    else compareField(field, other, errors);
  }
  for (const oneof of mine.oneofsArray) {
    if (oneof.isProto3Optional) continue;
    const other = theirs.oneofs?.[oneof.name];
    if (other === undefined || other.isProto3Optional) errors.push(`${display(oneof)}: oneof not in Envoy's ${display(theirs)}`);
  }
}

function compareEnum(mine: Enum, theirs: Enum, errors: string[]): void {
  for (const [valueName, number] of Object.entries(mine.values)) {
    const other = theirs.values[valueName];
    if (other === undefined) errors.push(`${display(mine)}.${valueName}: enum value not in Envoy`);
    else if (other !== number) errors.push(`${display(mine)}.${valueName}: value ${number}, Envoy has ${other}`);
  }
}

function compareService(mine: Service, theirs: Service, errors: string[]): void {
  for (const method of mine.methodsArray) {
    const other = theirs.methods[method.name];
    const name = display(method);
    if (other === undefined) {
      errors.push(`${name}: rpc not in Envoy's ${display(theirs)}`);
      continue;
    }
    const side = (stream: boolean | undefined, resolved: Type | null, declared: string): string =>
      `(${stream === true ? "stream " : ""}${resolved ? display(resolved) : declared})`;
    const signature = (m: typeof method): string =>
      `${side(m.requestStream, m.resolvedRequestType, m.requestType)} returns ` +
      side(m.responseStream, m.resolvedResponseType, m.responseType);
    if (signature(method) !== signature(other)) {
      errors.push(`${name}: rpc ${signature(method)}, Envoy has ${signature(other)}`);
    }
  }
}

function kindOf(obj: ReflectionObject | null): string {
  if (obj instanceof Type) return "message";
  if (obj instanceof Enum) return "enum";
  if (obj instanceof Service) return "service";
  if (obj instanceof Field) return "extension field";
  if (obj instanceof Namespace) return "package";
  return "nothing";
}

function walk(ns: NamespaceBase, envoyRoot: Root, errors: string[]): void {
  for (const obj of ns.nestedArray) {
    if (obj.fullName === WELL_KNOWN_NAMESPACE) continue;
    const other = envoyRoot.lookup(obj.fullName);
    const [myKind, theirKind] = [kindOf(obj), kindOf(other)];
    if (myKind !== theirKind) {
      // A missing package is reported through its members, which are the actual declarations.
      if (myKind !== "package") errors.push(`${display(obj)}: ${myKind} in the project, ${theirKind} in Envoy`);
      else if (obj instanceof Namespace) walk(obj, envoyRoot, errors);
      continue;
    }
    if (obj instanceof Type && other instanceof Type) compareType(obj, other, errors);
    else if (obj instanceof Enum && other instanceof Enum) compareEnum(obj, other, errors);
    else if (obj instanceof Service && other instanceof Service) compareService(obj, other, errors);
    else if (obj instanceof Field && other instanceof Field) compareField(obj, other, errors);
    // Types and services are namespaces too: recurse into nested messages and enums.
    if (obj instanceof Namespace) walk(obj, envoyRoot, errors);
  }
}

/**
 * Every service, rpc, message (nested too), enum, enum value, field and oneof that `projectRoot`
 * declares must exist under the same fully-qualified name in `envoyRoot` and agree on field number,
 * type, label, oneof membership, enum value number and rpc signature. Omissions are fine (subset),
 * additions and disagreements are returned as messages. Both roots must be resolved (loadSync or
 * resolveAll) and parsed with the same casing (see PARSE_OPTIONS).
 */
export function compareProtoSubset(projectRoot: Root, envoyRoot: Root): string[] {
  const errors: string[] = [];
  walk(projectRoot, envoyRoot, errors);
  return errors;
}
