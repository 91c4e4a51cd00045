"""The emulator's own file helpers: a file or folder appears under its final name only once it
belongs to the cassandra user, as with a real node, whose process creates everything as that
user. (Run as root, the emulator creates then hands over; a kill -9 between the two must not
leave a root-owned file that the next start refuses with FSWriteError.)"""

import os
import sys
import tempfile
import unittest
from unittest import mock

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cassemu import sstable, startup, util  # noqa: E402


class Killed(BaseException):
    """Stands for kill -9 between creating a path and handing it to cassandra."""


class KilledBeforeHandOver(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.addCleanup(util.rmtree, self.dir)
        util.give_to_cassandra(self.dir)

    def test_a_file_appears_under_its_name_only_once_handed_over(self):
        for write in (lambda p: util.write_file(p, b"x" * 10),
                      lambda p: util.copy_file(__file__, p)):
            final = os.path.join(self.dir, "nb-6-big-Digest.crc32")
            with mock.patch.object(util, "give_to_cassandra", side_effect=Killed):
                with self.assertRaises(Killed):
                    write(final)
            self.assertFalse(os.path.exists(final), os.listdir(self.dir))
            # What the interrupted write left is no sstable component and is scrubbed at startup.
            for f in os.listdir(self.dir):
                self.assertIsNone(sstable.parse_name(f), f)
            startup.scrub_table_dir(self.dir)
            self.assertEqual(os.listdir(self.dir), [])
            write(final)
            self.assertTrue(util.can_write(final))
            os.unlink(final)

    def test_a_folder_appears_under_its_name_only_once_handed_over(self):
        final = os.path.join(self.dir, "ks", "t-0123")
        with mock.patch.object(util, "give_to_cassandra", side_effect=Killed):
            with self.assertRaises(Killed):
                util.makedirs(final)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "ks")), os.listdir(self.dir))
        util.makedirs(final)
        self.assertTrue(os.path.isdir(final))
        self.assertTrue(util.can_write(final))


if __name__ == "__main__":
    unittest.main()
