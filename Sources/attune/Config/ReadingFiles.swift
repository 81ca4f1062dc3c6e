import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The bytes of the file at `path` (named on the command line), or an error that says why
/// they cannot be read: the system's reason, or that the path is a folder.
func contentsOfFile(_ path: String) throws -> Data {
    if let data = FileManager.default.contents(atPath: path) { return data }
    var isFolder: ObjCBool = false
    if FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), isFolder.boolValue {
        throw ValidationError("cannot read \(path): it is a folder")
    }
    let fd = open(path, O_RDONLY)
    if fd >= 0 { close(fd) }
    throw ValidationError("cannot read \(path)" + (fd < 0 ? ": \(String(cString: strerror(errno)))" : ""))
}
