import Foundation

/// Writes an adapter folder all at once: the files go to a hidden staging folder beside it,
/// then move into place, so a full disk or an unwritable folder leaves the previous contents
/// (or nothing), never a folder with half its files or a truncated weights file.
public enum AdapterFolder {
    public static func write(_ files: [(name: String, contents: Data)], to directory: URL) throws {
        let fm = FileManager.default
        let parent = directory.deletingLastPathComponent()
        let staging = parent.appendingPathComponent(".\(directory.lastPathComponent).partial-\(UUID().uuidString.prefix(8))")
        do {
            try fm.createDirectory(at: parent, withIntermediateDirectories: true)
            try fm.createDirectory(at: staging, withIntermediateDirectories: false)
            for file in files {
                try file.contents.write(to: staging.appendingPathComponent(file.name))
            }
            var isFolder: ObjCBool = false
            if fm.fileExists(atPath: directory.path, isDirectory: &isFolder) {
                guard isFolder.boolValue else { throw TrainingError.badAdapter("\(directory.path) exists and is not a folder") }
                for file in files {
                    try replace(directory.appendingPathComponent(file.name), with: staging.appendingPathComponent(file.name))
                }
                try fm.removeItem(at: staging)
            } else {
                try replace(directory, with: staging)
            }
        } catch {
            try? fm.removeItem(at: staging)
            if let error = error as? TrainingError { throw error }
            throw TrainingError.badAdapter("cannot write \(directory.path): \(reason(error))")
        }
    }

    /// `rename(2)`: atomic within one file system.
    private static func replace(_ target: URL, with source: URL) throws {
        guard rename(source.path, target.path) == 0 else {
            throw TrainingError.badAdapter("cannot move \(source.path) to \(target.path): \(String(cString: strerror(errno)))")
        }
    }

    /// The operating system's words for a failed write ("No space left on device").
    private static func reason(_ error: any Error) -> String {
        let ns = error as NSError
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code)))
        }
        return ns.localizedDescription
    }
}
